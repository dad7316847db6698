// One browser's side of a call: the signalling WebSocket and the
// RTCPeerConnection to the SFU. No UI here; the page listens to its events.
//
// The browser offers first (its camera and microphone, send-only); after that
// the SFU offers whenever someone's tracks are added or removed, and this side
// answers. Messages are handled strictly in order.

const PROTOCOL_VERSION = 1;

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
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  start() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws.onopen = () => this.send({ type: 'join', v: PROTOCOL_VERSION, token: this.token });
    this.ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.type === 'call-ended') {
        // At once, not queued: the close that follows must not read as a drop.
        this.closedByUs = true;
        this.stop();
        this.emit('call-ended', msg);
        return;
      }
      this.queue = this.queue.then(() => this.handle(msg)).catch((err) => {
        console.error('signalling message failed', msg.type, err);
        this.emit('problem', { message: 'Something went wrong setting up the call. Leave and join again.' });
      });
    };
    this.ws.onclose = (e) => {
      if (this.closedByUs) return;
      this.stop();
      this.emit('closed', { code: e.code, reason: e.reason });
    };
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  async handle(msg) {
    // The last few messages with their arrival times (ms since page load), for diagnosis.
    const m = window.carecall && window.carecall.metrics;
    if (m) {
      m.signals = (m.signals || []).slice(-30);
      m.signals.push(`${msg.type}@${Math.round(performance.now())}`);
    }
    switch (msg.type) {
      case 'joined':
        this.participant = msg.participant;
        this.iceServers = msg.ice_servers || [];
        for (const p of msg.participants) this.peers.set(p.participant, p);
        this.emit('joined', msg);
        for (const p of msg.participants) this.emit('peer', p);
        await this.startMedia(msg.participants.length);
        this.watchFlow();
        break;
      case 'answer':
        await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        break;
      case 'offer': {
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
      case 'error':
        this.emit('server-error', msg);
        break;
      default:
        break;
    }
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
    this.send({ type: 'offer', sdp: pc.localDescription.sdp });
  }

  // The SFU says which simulcast layers anyone would watch: pause the ones
  // above, saving the upload (and restart them when it asks again).
  async publishLayersUpTo(highest) {
    const order = SIMULCAST.map((e) => e.rid);
    const top = order.indexOf(highest);
    const sender = this.cameraSender;
    if (top < 0 || !sender) return;
    const params = sender.getParameters();
    let changed = false;
    for (const e of params.encodings || []) {
      const active = order.indexOf(e.rid) <= top;
      if (e.active !== active) {
        e.active = active;
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

  setMute(audio, video) {
    for (const t of this.localStream.getAudioTracks()) t.enabled = audio;
    for (const t of this.localStream.getVideoTracks()) t.enabled = video;
    this.send({ type: 'mute', audio, video });
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
    if (this.pc) this.pc.close();
    for (const t of this.localStream.getTracks()) t.stop();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
  }

  // Watches whether media still arrives: a dropped link can leave the
  // connection "connected" for many seconds. With someone else in the call
  // and not one packet in 2 s, emits 'stalled' (true), and (false) when
  // packets flow again.
  watchFlow() {
    let last = -1; let lastChange = performance.now(); let stalled = false;
    this.flowTimer = setInterval(async () => {
      if (!this.pc || this.peers.size === 0) { lastChange = performance.now(); return; }
      let packets = 0;
      (await this.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') packets += s.packetsReceived || 0; });
      const now = performance.now();
      if (packets !== last) { last = packets; lastChange = now; }
      const quiet = now - lastChange > 2000;
      if (quiet !== stalled) { stalled = quiet; this.emit('stalled', { stalled }); }
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
          totalSamplesReceived: s.totalSamplesReceived || 0, concealedSamples: s.concealedSamples || 0,
          nackCount: s.nackCount || 0, pliCount: s.pliCount || 0,
          framesReceived: s.framesReceived || 0, framesDropped: s.framesDropped || 0,
          keyFramesDecoded: s.keyFramesDecoded || 0,
        });
      });
    }
    return out;
  }
}

// Audio first: with RED each packet also carries the one before it, so a
// single lost packet costs no sound on a lossy care-home link (Opus in-band
// FEC is negotiated as well). Browsers without RED keep plain Opus.
function preferRedundantAudio(transceiver) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
  const rank = (c) => ({ 'audio/red': 0, 'audio/opus': 1 })[c.mimeType.toLowerCase()] ?? 2;
  const codecs = [...RTCRtpReceiver.getCapabilities('audio').codecs].sort((a, b) => rank(a) - rank(b));
  try {
    transceiver.setCodecPreferences(codecs);
  } catch (err) {
    console.warn('keeping the default audio codecs', err);
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
