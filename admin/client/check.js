// The connectivity check: each step measured in this browser, the result
// sent to the hub, which words the verdict and keeps it under a code.
const $ = (id) => document.getElementById(id);
const result = {
  camera: { ok: false, detail: null },
  microphone: { ok: false, detail: null },
  udp: { ok: false, rtt_ms: null, error: null },
  tcp: { ok: false, rtt_ms: null, error: null },
  turn_tls: { ok: false, rtt_ms: null, error: null },
  download_kbps: null,
  upload_kbps: null,
  loss: null,
  loss_pattern: null,
  loss_packets: null,
  download_loss: null,
  download_loss_pattern: null,
  download_loss_packets: null,
  download_jitter_ms: null,
  idle_rtt_ms: null,
  sending_rtt_ms: null,
  receiving_rtt_ms: null,
};
window.carecallCheck = { result, code: null, verdict: null };

function show(step, ok, text) {
  const li = document.querySelector(`#steps li[data-step="${step}"]`);
  li.dataset.state = ok ? 'pass' : 'fail';
  li.querySelector('.state').textContent = text;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function postJson(url, body) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error || `HTTP ${res.status}`);
  return json;
}

async function devices() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
    $('preview').srcObject = stream;
    const [video] = stream.getVideoTracks();
    const [audio] = stream.getAudioTracks();
    const s = video && video.getSettings();
    result.camera = { ok: !!video, detail: video ? `${video.label} (${s.width}x${s.height})` : 'no camera' };
    result.microphone = { ok: !!audio, detail: audio ? audio.label : 'no microphone' };
    return stream;
  } catch (e) {
    result.camera = { ok: false, detail: e.name };
    result.microphone = { ok: false, detail: e.name };
    return null;
  } finally {
    // The browser's own reason (NotAllowedError and such) goes to the
    // helpdesk with the result; the page says it plainly.
    show('camera', result.camera.ok, result.camera.ok ? 'working' : 'not working');
    show('microphone', result.microphone.ok, result.microphone.ok ? 'working' : 'not working');
  }
}

// The media path's round trip, timed with small messages the SFU echoes
// on a data channel (unordered, never resent), ten a second. Each sample
// belongs to the phase it was sent in.
class Probe {
  constructor(channel) {
    this.sent = new Map();
    this.samples = [];
    this.phase = 'connecting';
    this.seq = 0;
    channel.onmessage = (e) => {
      const sent = this.sent.get(e.data);
      if (!sent) return;
      this.sent.delete(e.data);
      this.samples.push({ phase: sent.phase, at: sent.at, rtt: performance.now() - sent.at });
    };
    this.timer = setInterval(() => {
      if (channel.readyState !== 'open') return;
      const id = String(++this.seq);
      this.sent.set(id, { at: performance.now(), phase: this.phase });
      channel.send(id);
    }, 100);
  }

  // The round trip of `phase` that a share `q` of its samples stay under
  // (0.5: the median), leaving out its first `settle` ms (a queue takes a
  // moment to fill); null without enough samples.
  quantile(phase, q, settle = 0) {
    const of = this.samples.filter((s) => s.phase === phase);
    const from = of.length ? of[0].at + settle : 0;
    const rtts = of.filter((s) => s.at >= from).map((s) => s.rtt).sort((a, b) => a - b);
    return rtts.length >= 3 ? Math.round(rtts[Math.floor(q * (rtts.length - 1))]) : null;
  }

  stop() { clearInterval(this.timer); }
}

// Offers `pc` to the SFU for one path and waits up to 10 s for media to
// connect; the answer, or why it did not connect.
async function connect(pc, name) {
  await pc.setLocalDescription(await pc.createOffer());
  const answer = await postJson('/check/api/offer', { path: name, sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  const deadline = performance.now() + 10000;
  while (pc.connectionState !== 'connected') {
    if (pc.connectionState === 'failed' || performance.now() > deadline) {
      throw new Error(pc.connectionState === 'failed' ? 'connection failed' : 'no connection within 10 s');
    }
    await sleep(100);
  }
  return answer;
}

// The selected pair's round trip, as the browser last measured it.
async function pairRtt(pc) {
  let rtt = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime != null) rtt = Math.round(s.currentRoundTripTime * 1000);
  });
  return rtt;
}

// TCP or TURN over TLS: does media connect over this path alone?
async function path(name, stream, iceServers) {
  const relay = name === 'turn_tls';
  const servers = relay ? iceServers.map((s) => ({ ...s, urls: s.urls.filter((u) => u.startsWith('turns:')) }))
    .filter((s) => s.urls.length) : [];
  if (relay && !servers.length) return { ok: false, rtt_ms: null, error: 'the hub offers no TLS relay' };
  const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: relay ? 'relay' : 'all' });
  try {
    const track = stream && stream.getVideoTracks()[0];
    if (track) pc.addTransceiver(track, { direction: 'sendonly' });
    else pc.addTransceiver('video', { direction: 'recvonly' });
    await connect(pc, name);
    await sleep(1000);
    return { ok: true, rtt_ms: await pairRtt(pc), error: null };
  } catch (e) {
    return { ok: false, rtt_ms: null, error: String(e.message || e) };
  } finally {
    pc.close();
  }
}

// The usual path, UDP, measured in full on one connection: the round trip
// idle (3 s, nothing sent), the loss of 10 s of sound and video on the way
// in, the SFU's download test, then the sustained rates, with the round
// trip timed all along, so a network that holds things back while busy
// shows. Without UDP, the rates are measured alone.
async function udp(stream, limits) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const probe = new Probe(pc.createDataChannel('carecall-echo', { ordered: false, maxRetransmits: 0 }));
  try {
    const video = stream && stream.getVideoTracks()[0];
    const sound = stream && stream.getAudioTracks()[0];
    const senders = [];
    if (video) senders.push([pc.addTransceiver('video', { direction: 'sendonly' }).sender, video]);
    // The sound too: 50 packets a second whatever the picture, so the loss
    // is read from enough packets.
    if (sound) senders.push([pc.addTransceiver('audio', { direction: 'sendonly' }).sender, sound]);
    const down = pc.addTransceiver('video', { direction: 'recvonly' });
    const answer = await connect(pc, 'udp');
    probe.phase = 'idle';
    await sleep(3000);
    probe.phase = 'media';
    for (const [sender, track] of senders) {
      // The picture kept small (150 kbit/s): enough packets to count, and
      // a slow uplink is not filled, whose own overflow would read as the
      // network's loss.
      if (track.kind === 'video') await capBitrate(sender, 150000);
      await sender.replaceTrack(track);
    }
    // Several hundred packets, whose loss on the way in the SFU counts
    // before any repair.
    await sleep(senders.length ? 10000 : 1000);
    const rtt = probe.quantile('idle', 0.5) ?? await pairRtt(pc);
    const up = await fetch(`/check/api/uplink?session=${encodeURIComponent(answer.session)}`);
    const counted = up.ok ? await up.json() : null;
    if (counted && counted.expected > 0) {
      result.loss = counted.lost / counted.expected;
      result.loss_packets = counted.expected;
      // Random loss misses one packet at a time; a signal dropping out
      // misses several in a row.
      if (counted.lost >= 10) result.loss_pattern = counted.lost / counted.runs >= 1.5 ? 'bursts' : 'random';
    }
    // Quiet again, so the rates below are the network's alone.
    for (const [sender] of senders) await sender.replaceTrack(null);
    probe.phase = 'downlink';
    // A download test that cannot run leaves its readings empty (the
    // verdict then says nothing of them); the path still connected.
    await downlink(answer.session, down.receiver).catch((e) => console.warn('download test', e));
    await rates(probe, limits);
    // Idle: the usual delay. Busy: the delay a call meets while the line
    // is full, which a queueing router keeps near its peak.
    result.idle_rtt_ms = probe.quantile('idle', 0.5);
    result.sending_rtt_ms = probe.quantile('upload', 0.9, 2000);
    result.receiving_rtt_ms = probe.quantile('download', 0.9, 2000);
    return { ok: true, rtt_ms: rtt, error: null };
  } catch (e) {
    return { ok: false, rtt_ms: null, error: String(e.message || e) };
  } finally {
    probe.stop();
    pc.close();
  }
}

// Caps what `sender` sends to `bps`.
async function capBitrate(sender, bps) {
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) return;
  params.encodings[0].maxBitrate = bps;
  await sender.setParameters(params);
}

// Counts the hub's download test as it arrives: what was lost on the way
// here (nothing is repaired), how the losses fell, and the jitter.
async function downlink(session, receiver) {
  const inbound = async () => {
    let found = { packetsReceived: 0, packetsLost: 0, jitter: null };
    (await receiver.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') found = s; });
    return found;
  };
  const started = await postJson(`/check/api/downlink?session=${encodeURIComponent(session)}`, {});
  const deadline = performance.now() + started.seconds * 1000 + 2000;
  // Losses per 200 ms: random loss spreads evenly, a dropping signal
  // loses runs of packets.
  const windows = [];
  let last = await inbound();
  while (performance.now() < deadline) {
    await sleep(200);
    const now = await inbound();
    windows.push(Math.max(0, now.packetsLost - last.packetsLost));
    last = now;
    if (now.packetsReceived + now.packetsLost >= started.packets) break;
  }
  // Packets never received at the end of the test are lost too, though no
  // later packet shows the gap.
  const lost = Math.max(0, started.packets - last.packetsReceived);
  result.download_loss = lost / started.packets;
  result.download_loss_packets = started.packets;
  result.download_jitter_ms = last.jitter == null ? null : Math.round(last.jitter * 1000);
  result.download_loss_pattern = lossPattern(windows);
}

// Random loss counted in equal windows varies about as much as its mean
// (a Poisson count); losses in runs vary far more. Needs a few losses.
function lossPattern(windows) {
  const total = windows.reduce((a, b) => a + b, 0);
  if (total < 10 || windows.length < 10) return null;
  const mean = total / windows.length;
  const variance = windows.reduce((a, w) => a + (w - mean) ** 2, 0) / windows.length;
  return variance / mean >= 3 ? 'bursts' : 'random';
}

// How long each sustained rate is measured, and the start left out of
// the reading (the connection ramps up).
const RATE_MS = 10000;
const RAMP_MS = 2000;

// The rate from (time, bytes so far) points, after the ramp: kbit/s.
function rateOf(points, start) {
  const after = points.filter(([t]) => t >= start + RAMP_MS);
  const [[t0, b0], [t1, b1]] = after.length >= 2 ? [after[0], after[after.length - 1]] : [[start, 0], points[points.length - 1] || [start, 0]];
  return t1 > t0 ? Math.round(((b1 - b0) * 8) / (t1 - t0)) : null;
}

function progress(label, share) {
  $('meter').hidden = share == null;
  $('progress-label').textContent = label;
  $('progress').value = Math.round(100 * Math.min(1, share || 0));
}

// Uploads for 10 s, one request after another, each larger while they
// take under 3 s (a slow link gets small ones, a fast one few large
// ones, and a long request keeps a router's queue as full as a real
// upload would); the hub counts what arrives.
async function upload(probe) {
  if (probe) probe.phase = 'upload';
  const body = new Uint8Array(4 << 20);
  crypto.getRandomValues(body.subarray(0, 65536));
  const start = performance.now();
  const end = start + RATE_MS;
  const points = [];
  let size = 64 << 10;
  let sent = 0;
  while (performance.now() < end) {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), end - performance.now());
    const t0 = performance.now();
    try {
      const res = await fetch('/check/api/upload', { method: 'POST', body: body.subarray(0, size), signal: stop.signal });
      sent += (await res.json()).bytes;
    } catch (e) {
      break;
    } finally {
      clearTimeout(timer);
    }
    points.push([performance.now(), sent]);
    if (performance.now() - t0 < 3000 && size < body.length) size *= 2;
    progress('Measuring the upload', (performance.now() - start) / RATE_MS);
  }
  return rateOf(points, start);
}

// Downloads for 10 s (the hub paces it to its cap), counting what arrives.
async function download(probe) {
  if (probe) probe.phase = 'download';
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), RATE_MS);
  const start = performance.now();
  const points = [];
  let got = 0;
  try {
    const res = await fetch('/check/api/download?bytes=8388608', { cache: 'no-store', signal: stop.signal });
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.byteLength;
      points.push([performance.now(), got]);
      progress('Measuring the download', (performance.now() - start) / RATE_MS);
    }
  } catch (e) {
    // Stopped at 10 s: what arrived is the reading.
  } finally {
    clearTimeout(timer);
  }
  return rateOf(points, start);
}

// Both sustained rates, shown as "at least" the hub's cap when they reach it.
async function rates(probe, limits) {
  const shown = (kbps) => (kbps == null ? 'could not be measured'
    : `${kbps >= 0.9 * limits.transfer_kbps ? 'at least ' : ''}${(kbps / 1000).toFixed(1)} Mbps`);
  try {
    result.upload_kbps = await upload(probe);
    show('upload', result.upload_kbps != null, shown(result.upload_kbps));
    result.download_kbps = await download(probe);
    show('download', result.download_kbps != null, shown(result.download_kbps));
  } catch (e) {
    show('upload', false, 'could not be measured');
  } finally {
    progress('', null);
  }
}

async function run() {
  $('start').disabled = true;
  $('announcer').textContent = 'Checking. This takes about a minute.';
  const stream = await devices();
  const limits = await postJson('/check/api/session', {});
  result.udp = await udp(stream, limits);
  show('udp', result.udp.ok, result.udp.ok ? 'connected' : 'could not connect');
  const pct = (x) => (x == null ? '?' : `${(x * 100).toFixed(1)}%`);
  show('loss', result.loss != null && result.download_loss != null,
    `${pct(result.loss)} lost sending, ${pct(result.download_loss)} receiving`);
  if (!result.udp.ok) await rates(null, limits);
  for (const name of ['tcp', 'turn_tls']) {
    result[name] = await path(name, stream, limits.ice_servers);
    const r = result[name];
    show(name, r.ok, r.ok ? 'connected' : 'could not connect');
  }
  if (stream) stream.getTracks().forEach((t) => t.stop());
  // Opened from a care home's page: the result is filed under the home.
  const home = new URLSearchParams(location.search).get('t');
  const answer = await postJson(`/check/api/result${home ? `?t=${encodeURIComponent(home)}` : ''}`, result);
  window.carecallCheck.home = answer.home;
  window.carecallCheck.code = answer.code;
  window.carecallCheck.verdict = answer.verdict;
  $('headline').textContent = answer.verdict.headline;
  $('notes').replaceChildren(...answer.verdict.notes.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
  $('code').textContent = answer.code;
  $('filed').textContent = answer.home
    ? `Filed under ${answer.home}: the helpdesk can see it with your home's calls.`
    : (answer.not_filed ? 'Not filed under your home (its link no longer works): give the helpdesk the code.' : '');
  $('verdict').hidden = false;
  $('announcer').textContent = `${answer.verdict.headline} ${answer.verdict.notes.join(' ')} The code for the helpdesk is ${answer.code.split('').join(' ')}.`;
}

$('start').onclick = () => run().catch((e) => {
  window.carecallCheck.error = String(e.message || e);
  $('headline').textContent = 'The check could not finish. Reload this page to try again; if it stops again, phone the hub\'s helpdesk.';
  $('verdict').hidden = false;
  $('announcer').textContent = $('headline').textContent;
});
