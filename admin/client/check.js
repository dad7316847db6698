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
      if (counted && counted.expected > 0) result.loss = counted.lost / counted.expected;
    }
    return { ok: true, rtt_ms: rtt, error: null };
  } catch (e) {
    return { ok: false, rtt_ms: null, error: String(e.message || e) };
  } finally {
    pc.close();
  }
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
  $('announcer').textContent = 'Checking. This takes about half a minute.';
  const stream = await devices();
  const { ice_servers: iceServers } = await postJson('/check/api/session', {});
  for (const name of ['udp', 'tcp', 'turn_tls']) {
    result[name] = await path(name, stream, iceServers);
    const r = result[name];
    show(name, r.ok, r.ok ? 'connected' : 'could not connect');
  }
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
