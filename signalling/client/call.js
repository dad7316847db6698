// One browser's side of a call: the signalling WebSocket and the
// RTCPeerConnection to the SFU. No UI here; the page listens to its events.
//
// The browser offers first (its camera and microphone, send-only); after that
// the SFU offers whenever someone's tracks are added or removed, and this side
// answers. Messages are handled strictly in order.
//
// Recovery needs no one to press anything. If the WebSocket drops, it is
// reopened and the session resumed with the token from 'joined' (the others
// never see this browser leave). When the hub restarts it says so first; the
// page waits for it and resumes on the new process, which has no media
// session for it: the connection is made afresh. If media stops arriving for a few seconds,
// or ICE fails, the browser restarts ICE, which also finds a path from a new
// address. The SFU answers the restart; DTLS and the tracks carry on.

const PROTOCOL_VERSION = 1;

// Close codes after which resuming is pointless: the server refused or ended
// the session on purpose (docs/signalling.md).
const FINAL_CLOSES = new Set([1008, 1009, 4001, 4002, 4003, 4004, 4005]);
// The close code of a call the hub ended.
const ENDED_CLOSE = 4004;
// The server keeps a dropped session this long (ms) for a resume.
const RESUME_WINDOW_MS = 30000;
// After 'restarting', how long (ms) to wait for the hub to come back.
const RESTART_WINDOW_MS = 120000;
// Media silent this long (ms) while others are in the call: restart ICE.
const RESTART_AFTER_MS = 5000;
// An answer missing this long (ms) means the socket is dead (browsers do
// not always notice a vanished network: the socket looks open).
const ANSWER_WAIT_MS = 3000;
// Messages for the page alone: passed on as events of the same name, as
// they came.
const FOR_THE_PAGE = new Set(['notice', 'recording', 'consent', 'asked', 'image-progress', 'image']);

// The camera is sent three times, smallest first; the SFU forwards each
// viewer the one that fits their link and tile (docs/adaptation.md).
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

export class Call extends EventTarget {
  constructor(token, localStream) {
    super();
    this.token = token;
    this.localStream = localStream;
    this.pc = null;
    this.ws = null;
    this.participant = null;
    this.peers = new Map();        // participant id -> info
    this.streams = new Map();      // participant id -> MediaStream of their tracks
    this.midOwner = new Map();     // m-line mid -> participant id (from 'track' messages)
    this.queue = Promise.resolve();
    this.closedByUs = false;
    this.views = new Map();        // participant id -> tile height sent to the SFU
    this.cameraSender = null;      // the video sender, whose layers the SFU may pause
    this.layersWanted = null;      // the highest layer the SFU last asked for
    this.videoCap = null;          // bits/s the camera keeps to while a photo goes up
    this.resumeToken = null;       // from 'joined': resumes this session on a new socket
    this.socketLostAt = null;      // when the socket dropped, while resuming
    this.lastRestart = -Infinity;  // when ICE was last restarted (ms)
    this.answerTimer = null;
    this.abandoned = [];           // sockets given up on, closed once resumed
    this.hub = location.origin;    // the node that hosts the room (docs/scaling.md)
    this.nodes = [];               // the hub's live nodes: where to resume if the hub goes
    this.redirects = 0;            // 'elsewhere' followed for this join
    this.rotation = 0;             // which node the next resume tries
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  start() {
    this.openSocket({ type: 'join', v: PROTOCOL_VERSION, token: this.token });
  }

  // Opens the signalling socket and sends `first` on it (join or resume).
  openSocket(first, hub = this.hub) {
    const url = new URL('/ws', hub);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    this.first = first;
    this.ws = ws;
    ws.onopen = () => {
      this.note(`socket-open`);
      this.send(first);
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.type === 'call-ended') {
        // At once, not queued: the close that follows must not read as a drop.
        this.closedByUs = true;
        this.stop();
        this.emit('call-ended', msg);
        return;
      }
      if (msg.type === 'elsewhere') {
        // The room is on another node of the hub: the same join, there.
        // Its close follows, on a socket no longer ours.
        this.note('elsewhere');
        this.hub = msg.url;
        if (this.first.type === 'resume') {
          // Tried there next, on the resume's own pace and within its
          // window: the close that follows counts as a lost socket.
          this.rotation = 0;
          return;
        }
        // A join follows a few redirects, not a loop.
        if (++this.redirects > 3) {
          this.closedByUs = true;
          this.stop();
          this.emit('closed', { code: 4007, reason: 'The hub could not find this call. Join it again.' });
          return;
        }
        this.openSocket(this.first);
        return;
      }
      if (msg.type === 'nodes') {
        this.nodes = msg.urls;
        return;
      }
      if (msg.type === 'error') {
        // At once too, and kept for the close that may follow: it says why.
        // Queued behind a slow answer, it came after the close, which then
        // read as a dropped link.
        this.note('error');
        this.lastError = msg;
        this.emit('server-error', msg);
        return;
      }
      this.queue = this.queue.then(() => this.handle(msg)).catch((err) => {
        console.error('signalling message failed', msg.type, err);
        this.emit('problem', { message: 'Something went wrong setting up the call. Leave and join again.' });
      });
    };
    ws.onclose = (e) => {
      this.note(`socket-closed-${e.code}`);
      if (this.closedByUs || ws !== this.ws) return;
      if (e.code === ENDED_CLOSE) {
        // The hub ended the call; its message did not get here first.
        this.stop();
        this.emit('call-ended', { message: e.reason });
        return;
      }
      if (this.resumeToken && !FINAL_CLOSES.has(e.code)) {
        this.socketLost();
        return;
      }
      this.stop();
      this.emit('closed', { code: e.code, reason: e.reason, error: this.lastError });
    };
  }

  // The socket dropped (or is presumed dead): reopen it and resume the
  // session, retrying until the server's resume window has passed.
  socketLost() {
    if (this.socketLostAt === null) {
      this.socketLostAt = performance.now();
      this.resumeTries = 0;
      this.rotation = 0;
      this.note('socket-lost');
      this.emit('signalling', { state: 'reconnecting' });
    }
    const old = this.ws;
    this.ws = null;
    if (old) {
      // Left open until the session is back: Chromium holds a new socket to
      // the same host while an old one waits out its closing handshake (2 s).
      old.onmessage = null;
      old.onclose = null;
      if (old.readyState <= WebSocket.OPEN) this.abandoned.push(old);
    }
    const windowMs = this.hubRestarting ? RESTART_WINDOW_MS : RESUME_WINDOW_MS;
    if (performance.now() - this.socketLostAt > windowMs) {
      this.stop();
      this.emit('closed', { code: 1006, reason: 'The connection to the hub was lost.' });
      return;
    }
    // At once the first time, then every 0.5 s: with no network each try
    // fails at once, and the first after it returns gets through.
    clearTimeout(this.resumeTimer);
    const delay = this.resumeTries++ === 0 ? 0 : 500;
    // Each try at the next node in turn, its own first: a node that is
    // gone hands its calls to another, which takes the resume.
    const hubs = [this.hub, ...this.nodes.filter((u) => u !== this.hub)];
    const hub = hubs[this.rotation++ % hubs.length];
    this.resumeTimer = setTimeout(() => {
      if (this.closedByUs) return;
      this.openSocket({ type: 'resume', v: PROTOCOL_VERSION, resume: this.resumeToken }, hub);
    }, delay);
  }

  // Closes sockets given up on. 4000 means "resuming elsewhere", not a
  // leave, should the frame ever reach the server.
  closeAbandoned() {
    for (const ws of this.abandoned.splice(0)) {
      if (ws.readyState <= WebSocket.OPEN) ws.close(4000, 'resuming');
    }
  }

  // Restarts ICE: a fresh offer with new credentials, so the browser looks
  // for a path again from whatever address it has now. One at a time.
  restartIce(why) {
    this.queue = this.queue.then(async () => {
      const pc = this.pc;
      if (!pc || pc.signalingState !== 'stable' || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this.lastRestart = performance.now();
      const m = window.carecall && window.carecall.metrics;
      if (m) m.iceRestarts = (m.iceRestarts || 0) + 1;
      console.info('restarting ICE:', why);
      this.note('ice-restart');
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      this.sendOffer();
    }).catch((err) => console.warn('ICE restart failed', err));
  }

  // Sends the local offer; if no answer comes, the socket is presumed dead
  // and is resumed, and the offer sent again on the new one.
  sendOffer() {
    this.send({ type: 'offer', sdp: this.pc.localDescription.sdp });
    clearTimeout(this.answerTimer);
    this.answerTimer = setTimeout(() => {
      if (this.pc && this.pc.signalingState === 'have-local-offer' && !this.closedByUs) this.socketLost();
    }, ANSWER_WAIT_MS);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  // Keeps the last few events with their times (ms since page load), for
  // diagnosis: signalling messages, connection states, ICE restarts.
  note(what) {
    const m = window.carecall && window.carecall.metrics;
    if (!m) return;
    m.signals = (m.signals || []).slice(-40);
    m.signals.push(`${what}@${Math.round(performance.now())}`);
  }

  async handle(msg) {
    this.note(msg.type);
    if (FOR_THE_PAGE.has(msg.type)) {
      this.emit(msg.type, msg);
      return;
    }
    switch (msg.type) {
      case 'joined':
        this.participant = msg.participant;
        this.resumeToken = msg.resume || null;
        this.iceServers = msg.ice_servers || [];
        for (const p of msg.participants) this.peers.set(p.participant, p);
        this.emit('joined', msg);
        for (const p of msg.participants) this.emit('peer', p);
        await this.startMedia(msg.participants.length);
        this.watchFlow();
        break;
      case 'resumed':
        await this.resumed(msg);
        break;
      case 'restarting':
        // The close that follows is not final: resume once the hub is back.
        this.hubRestarting = true;
        this.emit('restarting', msg);
        break;
      case 'answer':
        // A second answer to an offer sent twice (around a resume) is stale.
        if (this.pc.signalingState !== 'have-local-offer') break;
        clearTimeout(this.answerTimer);
        await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        // An offer resent after a resume may have been made with no network
        // at all: look for a path again from the address there is now.
        if (this.restartWhenStable) {
          this.restartWhenStable = false;
          this.restartIce('answered after a resume, media still stalled');
        }
        break;
      case 'offer': {
        // Crossed offers: ours wins, and the server redoes its own after
        // answering ours.
        if (this.pc.signalingState === 'have-local-offer') break;
        await this.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        await this.pc.setLocalDescription(await this.pc.createAnswer());
        this.send({ type: 'answer', sdp: this.pc.localDescription.sdp });
        break;
      }
      case 'participant-joined':
      case 'participant-updated':
        this.peers.set(msg.participant, msg);
        this.emit('peer', msg);
        break;
      case 'participant-left':
        this.peers.delete(msg.participant);
        this.streams.delete(msg.participant);
        this.emit('peer-left', msg);
        break;
      case 'track':
        // Always before the SDP that uses the mid, so ontrack finds the owner.
        this.midOwner.set(msg.mid, msg.participant);
        break;
      case 'video-paused':
        this.emit('video-paused', { participant: msg.participant, paused: msg.paused });
        break;
      case 'publish-layers':
        this.publishLayersUpTo(msg.highest);
        break;
      case 'media-connected':
        this.emit('media-connected', {});
        break;
      default:
        break;
    }
  }

  // Back on a new socket, with the same participant id. Anyone who left
  // meanwhile goes; media is restarted if it is not flowing, or made afresh
  // when the hub restarted (`media: 'new'`).
  async resumed(msg) {
    // Resumed on another node: it hosts the call now.
    if (this.ws) this.hub = new URL(this.ws.url.replace(/^ws/, 'http')).origin;
    this.socketLostAt = null;
    this.hubRestarting = false;
    this.closeAbandoned();
    const present = new Set(msg.participants.map((p) => p.participant));
    for (const id of [...this.peers.keys()]) {
      if (present.has(id)) continue;
      this.peers.delete(id);
      this.streams.delete(id);
      this.emit('peer-left', { participant: id });
    }
    for (const p of msg.participants) {
      this.peers.set(p.participant, p);
      this.emit('peer', p);
    }
    this.emit('signalling', { state: 'resumed' });
    if (msg.media === 'new') {
      await this.freshMedia(msg.ice_servers);
      return;
    }
    if (!this.pc) return;
    if (this.pc.signalingState === 'have-local-offer') {
      // Sent again as it was: if the server had it, it answers the same.
      this.restartWhenStable = this.stalled;
      this.sendOffer();
    } else if (this.stalled || this.pc.iceConnectionState === 'failed') this.restartIce('resumed with media stalled');
  }

  // The hub lost this browser's media session (it restarted): a new
  // connection with a new offer, the same camera and microphone. The tiles
  // keep their streams; the new tracks replace the old ones in them.
  async freshMedia(iceServers) {
    clearTimeout(this.answerTimer);
    if (this.pc) this.pc.close();
    this.pc = null;
    this.midOwner.clear();
    if (iceServers && iceServers.length) this.iceServers = iceServers;
    this.note('fresh-media');
    await this.startMedia(this.peers.size);
    // The new process knows no tile sizes yet.
    for (const [participant, height] of this.views) this.send({ type: 'view', participant, height });
  }

  attach(owner, track) {
    if (!this.peers.has(owner)) return; // they left before their track arrived
    let stream = this.streams.get(owner);
    if (!stream) { stream = new MediaStream(); this.streams.set(owner, stream); }
    for (const old of stream.getTracks().filter((t) => t.kind === track.kind && t !== track)) stream.removeTrack(old);
    stream.addTrack(track);
    track.addEventListener('ended', () => stream.removeTrack(track));
    this.emit('remote-track', { participant: owner, stream, track });
  }

  // `others`: how many people are already in the call. One receive-only audio
  // and video slot each goes into the first offer, so their media can flow as
  // soon as the connection is up, without a second negotiation.
  async startMedia(others) {
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      iceServers: this.iceServers,
    });
    this.pc = pc;
    pc.onicecandidate = (e) => {
      // mDNS (.local) names are unresolvable by the SFU; it learns the address from ICE checks.
      if (e.candidate && e.candidate.candidate && !e.candidate.candidate.includes('.local')) {
        this.send({ type: 'candidate', candidate: e.candidate.candidate });
      }
    };
    pc.onconnectionstatechange = () => this.emit('connection', { state: pc.connectionState });
    pc.oniceconnectionstatechange = () => {
      this.note(`ice-${pc.iceConnectionState}`);
      if (pc.iceConnectionState === 'failed') this.restartIce('ICE failed');
    };
    pc.ontrack = (e) => {
      const owner = this.midOwner.get(e.transceiver.mid);
      if (owner) this.attach(owner, e.track);
      else console.warn('track on an m-line no participant was announced for', e.transceiver.mid);
    };
    for (const track of this.localStream.getTracks()) {
      if (track.kind === 'video') track.contentHint = 'detail';
      const init = { direction: 'sendonly', streams: [this.localStream] };
      if (track.kind === 'video') init.sendEncodings = SIMULCAST;
      const t = pc.addTransceiver(track, init);
      if (track.kind === 'video') {
        this.cameraSender = t.sender;
        preferVp8(t);
        await preferResolution(t.sender);
      } else {
        preferRedundantAudio(t);
      }
    }
    for (let i = 0; i < others; i++) {
      preferRedundantAudio(pc.addTransceiver('audio', { direction: 'recvonly' }));
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    await pc.setLocalDescription(await pc.createOffer());
    this.sendOffer();
  }

  // The SFU says which simulcast layers anyone would watch: pause the ones
  // above, saving the upload (and restart them when it asks again).
  async publishLayersUpTo(highest) {
    this.layersWanted = highest;
    await this.applyLayers();
  }

  // While a photo goes up, the camera gives way to it: its lowest layer
  // alone, at most `bps` (null: back to what the SFU asks for). The sound is
  // left alone.
  async capVideo(bps) {
    this.videoCap = bps;
    await this.applyLayers();
  }

  async applyLayers() {
    const order = SIMULCAST.map((e) => e.rid);
    const wanted = this.layersWanted === null ? order.length - 1 : order.indexOf(this.layersWanted);
    const top = this.videoCap === null ? wanted : 0;
    const sender = this.cameraSender;
    if (top < 0 || !sender) return;
    const params = sender.getParameters();
    let changed = false;
    for (const e of params.encodings || []) {
      const layer = SIMULCAST.find((l) => l.rid === e.rid);
      const active = order.indexOf(e.rid) <= top;
      const maxBitrate = this.videoCap === null ? layer.maxBitrate : Math.min(layer.maxBitrate, this.videoCap);
      if (e.active !== active || e.maxBitrate !== maxBitrate) {
        e.active = active;
        e.maxBitrate = maxBitrate;
        changed = true;
      }
    }
    if (!changed) return;
    try {
      await sender.setParameters(params);
    } catch (err) {
      console.warn('could not change the published layers', err);
    }
  }

  // How tall (device pixels) this browser shows a participant's video, so the
  // SFU sends a layer that fits: a thumbnail never pulls 720p.
  setView(participant, height) {
    if (this.views.get(participant) === height) return;
    this.views.set(participant, height);
    this.send({ type: 'view', participant, height });
  }

  // Sends `track` in place of the camera (reopened, or the other camera):
  // `replaceTrack` needs no renegotiation and keeps the simulcast layers.
  // The old track is stopped; the new one is muted if the old one was.
  async replaceCamera(track) {
    const old = this.localStream.getVideoTracks()[0];
    track.contentHint = 'detail';
    if (old) track.enabled = old.enabled;
    if (this.cameraSender) await this.cameraSender.replaceTrack(track);
    if (old) {
      this.localStream.removeTrack(old);
      old.stop();
    }
    this.localStream.addTrack(track);
  }

  setMute(audio, video) {
    for (const t of this.localStream.getAudioTracks()) t.enabled = audio;
    for (const t of this.localStream.getVideoTracks()) t.enabled = video;
    this.send({ type: 'mute', audio, video });
  }

  // Asks `participant` for `what` ('rear-camera' or 'photo'); hub staff only.
  ask(participant, what) {
    this.send({ type: 'ask', participant, what });
  }

  // Start or stop recording the call (the hub allows it to clinicians only).
  setRecording(on) {
    this.send({ type: 'record', on });
  }

  // A clinician's record of consent to record (`given`) or a refusal.
  recordConsent(given, by, how) {
    this.send({ type: 'consent', given, by, how });
  }

  leave() {
    this.closedByUs = true;
    this.send({ type: 'leave' });
    this.stop();
  }

  // Ends media: closes the connection and turns the camera and microphone off
  // (the tablet's camera light must go out when the call ends).
  stop() {
    clearInterval(this.flowTimer);
    clearTimeout(this.answerTimer);
    clearTimeout(this.resumeTimer);
    this.closeAbandoned();
    if (this.pc) this.pc.close();
    for (const t of this.localStream.getTracks()) t.stop();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
  }

  // Watches whether this browser's link to the SFU still carries anything
  // (media, RTCP, ICE checks): a dropped link can leave the connection
  // "connected" for many seconds. With someone else in the call and not one
  // byte in 2 s, emits 'stalled' (true), and (false) when bytes flow again.
  // Still nothing after 5 s: restarts ICE (again every 5 s while it lasts).
  // Someone else's video stopping is not this link's problem: the SFU keeps
  // sending RTCP for what this browser publishes.
  watchFlow() {
    let last = -1; let lastChange = performance.now(); let stalled = false;
    this.stalled = false;
    this.flowTimer = setInterval(async () => {
      if (!this.pc || this.peers.size === 0) { lastChange = performance.now(); return; }
      const packets = bytesReceived(await this.pc.getStats());
      const now = performance.now();
      if (packets !== last) { last = packets; lastChange = now; }
      const quiet = now - lastChange > 2000;
      if (quiet !== stalled) {
        stalled = quiet;
        this.stalled = quiet;
        this.note(quiet ? 'stalled' : 'flowing');
        this.emit('stalled', { stalled });
      }
      if (now - lastChange > RESTART_AFTER_MS && now - this.lastRestart > RESTART_AFTER_MS) {
        this.restartIce('no media for 5 s');
      }
    }, 500);
  }

  // Per remote participant: what this browser receives and decodes.
  async receiveStats() {
    const out = [];
    if (!this.pc) return out;
    for (const r of this.pc.getReceivers()) {
      const owner = [...this.streams.entries()].find(([, s]) => s.getTracks().includes(r.track));
      if (!owner) continue;
      const report = await r.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        out.push({
          participant: owner[0], kind: s.kind, packetsReceived: s.packetsReceived || 0,
          packetsLost: s.packetsLost || 0, framesDecoded: s.framesDecoded || 0,
          frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
          framesPerSecond: s.framesPerSecond || 0, freezeCount: s.freezeCount || 0,
          totalFreezesDuration: s.totalFreezesDuration || 0,
          totalSamplesReceived: s.totalSamplesReceived || 0, concealedSamples: s.concealedSamples || 0,
          nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
          framesReceived: s.framesReceived || 0, framesDropped: s.framesDropped || 0,
          keyFramesDecoded: s.keyFramesDecoded || 0, bytesReceived: s.bytesReceived || 0,
          retransmittedPacketsReceived: s.retransmittedPacketsReceived || 0,
        });
      });
    }
    return out;
  }
}

// Bytes this browser has received on its connection, RTCP included: from the
// transport stats, or the ICE candidate pairs' where the transport has no
// byte counts (Firefox).
function bytesReceived(report) {
  let transport = null;
  let pairs = 0;
  report.forEach((s) => {
    if (s.type === 'transport' && s.bytesReceived !== undefined) transport = (transport || 0) + s.bytesReceived;
    if (s.type === 'candidate-pair') pairs += s.bytesReceived || 0;
  });
  return transport ?? pairs;
}

// Audio first: with RED each packet also carries the one before it, so a
// single lost packet costs no sound on a lossy care-home link (Opus in-band
// FEC is negotiated as well). Browsers without RED keep plain Opus.
const preferRedundantAudio = (t) => preferCodecs(t, 'audio', ['audio/red', 'audio/opus']);

// VP8 first for the camera (docs/decisions.md, "Video codec"): every browser
// decodes it and the recorder keeps it. Safari lists H.264 first by default;
// the SFU answers VP8 first anyway, so this only makes the offer say so too.
const preferVp8 = (t) => preferCodecs(t, 'video', ['video/vp8']);

// Puts the `kind` codecs named in `first` (lower-case MIME types) ahead of
// the rest, in that order, where the browser lets a page choose.
function preferCodecs(transceiver, kind, first) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
  const rank = (c) => {
    const at = first.indexOf(c.mimeType.toLowerCase());
    return at < 0 ? first.length : at;
  };
  const codecs = [...RTCRtpReceiver.getCapabilities(kind).codecs].sort((a, b) => rank(a) - rank(b));
  try {
    transceiver.setCodecPreferences(codecs);
  } catch (err) {
    console.warn(`keeping the default ${kind} codecs`, err);
  }
}

// Clinicians need detail: keep the resolution and let frame rate give way
// (without this Chromium starts a 720p camera at 480x270 and climbs slowly).
async function preferResolution(sender) {
  try {
    const params = sender.getParameters();
    params.degradationPreference = 'maintain-resolution';
    await sender.setParameters(params);
  } catch (err) {
    console.warn('degradationPreference not supported here', err);
  }
}
