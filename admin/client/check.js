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
  download_loss: null,
  download_loss_pattern: null,
  download_jitter_ms: null,
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

// Connects media to the SFU over one path; on UDP also sends sound and
// video for 10 s and asks the SFU how much of it was lost on the way in.
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
    // The sound too on UDP: 50 packets a second whatever the picture, so
    // the loss is read from enough packets.
    const sound = name === 'udp' && stream && stream.getAudioTracks()[0];
    if (sound) pc.addTransceiver(sound, { direction: 'sendonly' });
    // On UDP, a slot for the hub's download test (the one above when there
    // is no camera).
    const down = name !== 'udp' ? null : (track ? pc.addTransceiver('video', { direction: 'recvonly' }) : pc.getTransceivers()[0]);
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await postJson('/check/api/offer', { path: name, sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    const deadline = performance.now() + 10000;
    while (pc.connectionState !== 'connected') {
      if (pc.connectionState === 'failed' || performance.now() > deadline) {
        return { ok: false, rtt_ms: null, error: pc.connectionState === 'failed' ? 'connection failed' : 'no connection within 10 s' };
      }
      await sleep(100);
    }
    // On UDP, ten seconds of sound and video: several hundred packets, whose
    // loss on the way in the SFU counts before any repair.
    await sleep(name === 'udp' && track ? 10000 : 1000);
    let rtt = null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime != null) rtt = Math.round(s.currentRoundTripTime * 1000);
    });
    if (name === 'udp' && answer.session) {
      const up = await fetch(`/check/api/uplink?session=${encodeURIComponent(answer.session)}`);
      const counted = up.ok ? await up.json() : null;
      if (counted && counted.expected > 0) {
        result.loss = counted.lost / counted.expected;
        // Random loss misses one packet at a time; a signal dropping out
        // misses several in a row.
        if (counted.lost >= 10) result.loss_pattern = counted.lost / counted.runs >= 1.5 ? 'bursts' : 'random';
      }
      // A download test that cannot run leaves its readings empty (the
      // verdict then says nothing of them); the path still connected.
      await downlink(answer.session, down.receiver).catch((e) => console.warn('download test', e));
    }
    return { ok: true, rtt_ms: rtt, error: null };
  } catch (e) {
    return { ok: false, rtt_ms: null, error: String(e.message || e) };
  } finally {
    pc.close();
  }
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

async function throughput() {
  const t0 = performance.now();
  const res = await fetch('/check/api/download?bytes=4000000', { cache: 'no-store' });
  const got = (await res.arrayBuffer()).byteLength;
  result.download_kbps = Math.round((got * 8) / (performance.now() - t0));
  show('download', true, `${(result.download_kbps / 1000).toFixed(1)} Mbps`);
  const body = new Uint8Array(2000000);
  crypto.getRandomValues(body.subarray(0, 65536));
  const t1 = performance.now();
  const up = await fetch('/check/api/upload', { method: 'POST', body });
  const sent = (await up.json()).bytes;
  result.upload_kbps = Math.round((sent * 8) / (performance.now() - t1));
  show('upload', true, `${(result.upload_kbps / 1000).toFixed(1)} Mbps`);
}

async function run() {
  $('start').disabled = true;
  $('announcer').textContent = 'Checking. This takes about a minute.';
  const stream = await devices();
  const { ice_servers: iceServers } = await postJson('/check/api/session', {});
  for (const name of ['udp', 'tcp', 'turn_tls']) {
    result[name] = await path(name, stream, iceServers);
    const r = result[name];
    show(name, r.ok, r.ok ? 'connected' : 'could not connect');
  }
  const pct = (x) => (x == null ? '?' : `${(x * 100).toFixed(1)}%`);
  show('loss', result.loss != null && result.download_loss != null,
    `${pct(result.loss)} lost sending, ${pct(result.download_loss)} receiving`);
  try { await throughput(); } catch (e) { show('upload', false, 'could not be measured'); }
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
