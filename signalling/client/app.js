// The call page: pre-join (preview, device choice, one big button), the call
// view (a tile per person), and plain-language messages when something is wrong.
import { Call } from '/client/call.js';
import { ConsentPrompt } from '/client/consent.js';
import { PhotoPanel } from '/client/photo.js';
import { CAMERA, CameraKeeper, ScreenAwake, Speaker } from '/client/tablet.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get('t') || '';
const autoJoin = params.get('go') === '1';
let joined = false;

// Figures the test suite (and curious admins) can read: ms since page load.
const metrics = { firstRemoteFrameMs: {}, connectedMs: null, joinClickedMs: null };
window.carecall = { metrics, call: null };

let localStream = null;
let currentCall = null;
let camera = null;
let myRole = null;
// Roles that may ask a care home's tablet for the rear camera.
const HUB_STAFF = new Set(['operator', 'clinician', 'specialist']);
const awake = new ScreenAwake(metrics);
const photos = new PhotoPanel(metrics, announce);
const speaker = new Speaker(metrics, () => {
  $('tap-to-hear').hidden = false;
  announce('The sound is off until you press Tap to hear the call.');
});

// Tells the SFU the size of each remote tile as the layout changes.
const tileSizes = new ResizeObserver((entries) => {
  for (const e of entries) {
    const tile = e.target.closest('.tile');
    if (!tile || !currentCall) continue;
    const height = Math.round(e.contentRect.height * (window.devicePixelRatio || 1));
    currentCall.setView(tile.dataset.participant, height);
  }
});

const TITLES = { prejoin: 'Join the video call', call: 'In a call with the hub', ended: 'Call ended' };

function show(screen) {
  for (const id of ['prejoin', 'call', 'ended']) $(id).hidden = id !== screen;
  document.title = `${TITLES[screen]} – carecall`;
}

// Tells a screen reader what changed, through the page's one polite live
// region: each announcement is a new line in it (additions are what a
// screen reader reads), and only the last few are kept.
function announce(text) {
  const region = $('announcer');
  const line = document.createElement('span');
  line.textContent = `${text} `;
  region.append(line);
  while (region.childElementCount > 3) region.firstElementChild.remove();
}

// Who is in the call, by id: names for "… left", and who is new.
const names = new Map();
// What says the link is down now: 'socket', 'ice', 'media'.
const linkDown = new Set();

// Shows and announces the link dropping and coming back, once each way:
// down when the first sign says so, back when the last one clears.
function setLinkDown(sign, down) {
  const before = linkDown.size > 0;
  if (down) linkDown.add(sign);
  else linkDown.delete(sign);
  const now = linkDown.size > 0;
  if (now === before) return;
  say('call-message', now ? 'Reconnecting…' : '');
  announce(now ? 'The connection dropped. Reconnecting.' : 'Reconnected.');
}

function say(el, text) {
  $(el).textContent = text || '';
  $(el).hidden = !text;
}

function explainMediaError(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The camera or microphone is blocked. Allow them for this page (look for the camera symbol near the address bar), then press Try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found. Check one is plugged in and switched on, then press Try again.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera is being used by another app. Close that app, then press Try again.';
    default:
      return 'The camera or microphone could not be started. Press Try again, or restart the tablet.';
  }
}

async function openDevices() {
  say('prejoin-message', '');
  $('retry-button').hidden = true;
  $('join-button').disabled = true;
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  const cam = $('camera-select').value;
  const mic = $('mic-select').value;
  const audio = mic ? { deviceId: { exact: mic }, echoCancellation: true } : { echoCancellation: true };
  try {
    localStream = await navigator.mediaDevices.getUserMedia({
      video: cam ? { ...CAMERA, deviceId: { exact: cam } } : CAMERA,
      audio,
    });
  } catch (err) {
    // The call goes on with sound when the camera cannot start (blocked,
    // broken, in use by another app): better heard than not at all.
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ audio });
      metrics.audioOnly = true;
      say('prejoin-message', `${explainMediaError(err)} Until then you can join with sound only.`);
      $('retry-button').hidden = false;
    } catch (audioErr) {
      localStream = null;
      say('prejoin-message', explainMediaError(err));
      $('retry-button').hidden = false;
      return;
    }
  }
  $('preview').srcObject = localStream;
  await listDevices();
  $('join-button').disabled = false;
  // Sent here by the hub with the call already answered: straight in.
  if (autoJoin && !joined) join();
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    const chosen = select.value || (current && current.getSettings().deviceId);
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
      o.selected = d.deviceId === chosen;
      return o;
    }));
  };
  fill($('camera-select'), 'videoinput', localStream.getVideoTracks()[0]);
  fill($('mic-select'), 'audioinput', localStream.getAudioTracks()[0]);
}

function tileFor(id) {
  let tile = document.querySelector(`.tile[data-participant="${CSS.escape(id)}"]`);
  if (tile) return tile;
  tile = document.createElement('div');
  tile.className = 'tile';
  tile.dataset.participant = id;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  const name = document.createElement('span');
  name.className = 'name';
  tile.append(video, name);
  $('tiles').append(tile);
  tileSizes.observe(video);
  return tile;
}

function updatePeer(info) {
  const tile = tileFor(info.participant);
  // Those present at joining were named in one sentence then.
  if (!names.has(info.participant)) announce(`${info.name} joined the call.`);
  names.set(info.participant, info.name);
  tile.querySelector('video').setAttribute('aria-label', `Video of ${info.name} (${info.role})`);
  if (HUB_STAFF.has(myRole) && info.role === 'home' && !tile.querySelector('.ask')) {
    const ask = document.createElement('button');
    ask.className = 'ask';
    ask.textContent = 'Ask for rear camera';
    ask.onclick = () => {
      currentCall.ask(info.participant, 'rear-camera');
      say('call-message', `Asked ${info.name} to show the rear camera.`);
    };
    const photo = document.createElement('button');
    photo.className = 'ask photo-ask';
    photo.textContent = 'Take photo';
    photo.onclick = () => askPhoto(info.participant);
    tile.append(ask, photo);
  }
  const name = tile.querySelector('.name');
  name.textContent = `${info.name} (${info.role})`;
  name.classList.toggle('muted', !info.audio);
  let off = tile.querySelector('.no-video');
  if (!info.video && !off) {
    off = document.createElement('div');
    off.className = 'no-video';
    off.textContent = 'Camera off';
    tile.append(off);
  } else if (info.video && off) {
    off.remove();
  }
}

// Hub staff ask `participant` for a full-resolution photo.
function askPhoto(participant) {
  currentCall.ask(participant, 'photo');
  const name = names.get(participant) || 'the home';
  say('call-message', `Asked ${name} for a photo.`);
}

function watchFirstFrame(id, video) {
  if (metrics.firstRemoteFrameMs[id] !== undefined) return;
  const mark = () => {
    if (metrics.firstRemoteFrameMs[id] === undefined) metrics.firstRemoteFrameMs[id] = performance.now();
  };
  if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(mark);
  else video.addEventListener('loadeddata', mark, { once: true });
}

function join() {
  joined = true;
  metrics.joinClickedMs = performance.now();
  show('call');
  $('self-video').srcObject = localStream;
  const call = new Call(token, localStream);
  window.carecall.call = call;
  currentCall = call;
  awake.start();
  if (localStream.getVideoTracks().length) watchCamera(call);
  // Tiles made before the call object existed report their size now.
  for (const v of document.querySelectorAll('#tiles .tile video')) {
    tileSizes.unobserve(v);
    tileSizes.observe(v);
  }
  call.addEventListener('peer', (e) => updatePeer(e.detail));
  // Only a clinician gets the button; the hub refuses anyone else anyway.
  call.addEventListener('joined', (e) => {
    myRole = e.detail.role;
    const present = e.detail.participants;
    for (const p of present) names.set(p.participant, p.name);
    announce(present.length
      ? `You are in the call with ${present.map((p) => p.name).join(', ')}.`
      : 'You are in the call. The others will join you here.');
    $('record-button').hidden = e.detail.role !== 'clinician';
    // Joined without a camera: the others see "Camera off", not a black tile.
    if (!localStream.getVideoTracks().length) {
      videoOn = false;
      $('camera-button').disabled = true;
      call.setMute(audioOn, false);
      if (!$('self-tile').querySelector('.no-video')) {
        const note = document.createElement('div');
        note.className = 'no-video';
        note.textContent = 'Your camera could not start: the call goes on with sound only';
        $('self-tile').append(note);
      }
    }
  });
  // What the hub says to everyone: who is joining, where the call goes next.
  call.addEventListener('notice', (e) => {
    metrics.notices = [...(metrics.notices || []), e.detail.message];
    say('call-message', e.detail.message);
    announce(e.detail.message);
    clearTimeout(noticeTimer);
    // Cleared only if nothing newer (such as "Reconnecting…") replaced it.
    noticeTimer = setTimeout(() => {
      if ($('call-message').textContent === e.detail.message) say('call-message', '');
    }, 10000);
  });
  call.addEventListener('consent', (e) => consent.update(e.detail.consent));
  call.addEventListener('recording', (e) => {
    const { active, by } = e.detail;
    metrics.recording = active;
    $('recording-indicator').hidden = !active;
    $('record-button').setAttribute('aria-pressed', String(active));
    consent.recordingChanged(active);
    const who = by === call.participant ? 'You' : (call.peers.get(by)?.name || 'The clinician');
    const told = active ? `${who} started recording this call.` : 'Recording stopped.';
    say('call-message', told);
    announce(told);
    clearTimeout(recordingNoteTimer);
    recordingNoteTimer = setTimeout(() => say('call-message', ''), 6000);
  });
  call.addEventListener('asked', (e) => {
    if (e.detail.what === 'photo') {
      photos.take(e.detail, call, localStream);
      return;
    }
    if (e.detail.what !== 'rear-camera') return;
    const many = !$('switch-camera-button').hidden;
    $('ask-text').textContent = many
      ? `${e.detail.name} asks you to show the rear camera.`
      : `${e.detail.name} asks you to turn the tablet to show them.`;
    $('ask-switch').hidden = !many;
    $('ask-prompt').hidden = false;
  });
  call.addEventListener('image-progress', (e) => {
    photos.progress(e.detail, names.get(e.detail.from) || 'the home');
  });
  call.addEventListener('image', (e) => {
    const from = e.detail.from;
    photos.arrived(e.detail, names.get(from) || 'the home', () => askPhoto(from));
  });
  call.addEventListener('video-paused', (e) => {
    const tile = tileFor(e.detail.participant);
    let note = tile.querySelector('.paused');
    if (e.detail.paused && !note) {
      note = document.createElement('div');
      note.className = 'paused';
      note.textContent = 'Video paused to keep the sound clear';
      tile.append(note);
    } else if (!e.detail.paused && note) {
      note.remove();
    }
  });
  call.addEventListener('peer-left', (e) => {
    const name = names.get(e.detail.participant);
    names.delete(e.detail.participant);
    if (name) announce(`${name} left the call.`);
    const tile = document.querySelector(`.tile[data-participant="${CSS.escape(e.detail.participant)}"]`);
    if (tile) tile.remove();
  });
  call.addEventListener('remote-track', (e) => {
    const { participant, stream } = e.detail;
    const video = tileFor(participant).querySelector('video');
    if (video.srcObject !== stream) video.srcObject = stream;
    if (e.detail.track.kind === 'video') watchFirstFrame(participant, video);
    speaker.play(video);
  });
  call.addEventListener('connection', (e) => {
    if (e.detail.state === 'connected' && metrics.connectedMs === null) metrics.connectedMs = performance.now();
    if (e.detail.state === 'connected' && $('call-message').textContent === 'Connecting…') say('call-message', '');
    // The call restarts ICE by itself; the offer to rejoin follows if that fails.
    if (['connected', 'disconnected', 'failed'].includes(e.detail.state)) {
      setLinkDown('ice', e.detail.state !== 'connected');
    }
  });
  // The signalling socket dropped and is being resumed, or is back.
  call.addEventListener('signalling', (e) => setLinkDown('socket', e.detail.state === 'reconnecting'));
  // A dropped link: the last picture stays on each tile while the browser
  // finds the hub again by itself.
  call.addEventListener('stalled', (e) => {
    setLinkDown('media', e.detail.stalled);
    clearTimeout(rejoinTimer);
    $('rejoin-offer').hidden = true;
    // Stalled is noticed 2 s after the last packet: offer to rejoin 30 s
    // after the drop, and keep waiting in case it comes back by itself.
    if (e.detail.stalled) {
      rejoinTimer = setTimeout(() => {
        say('call-message', 'The connection has not come back by itself.');
        announce('The connection has not come back by itself. Press Join again.');
        $('rejoin-offer').hidden = false;
      }, 28000);
    }
  });
  call.addEventListener('server-error', (e) => {
    metrics.errors = [...(metrics.errors || []), e.detail.code];
    say('call-message', plainError(e.detail));
  });
  call.addEventListener('problem', (e) => say('call-message', e.detail.message));
  // The hub is restarting (an upgrade): the call waits for it, no click.
  call.addEventListener('restarting', (e) => {
    setLinkDown('socket', true);
    say('call-message', e.detail.message);
  });
  call.addEventListener('call-ended', (e) => end('The call has ended', e.detail.message));
  call.addEventListener('closed', (e) => end('The call was disconnected',
    e.detail.error ? plainError(e.detail.error) : 'The connection to the hub was lost.'));
  say('call-message', 'Connecting…');
  call.start();
}

// A refusal from the hub in words for whoever is on the call. The link's
// own problems and refusals of hub staff's actions are worded by the hub
// already; the rest are faults nobody on the call can fix by themselves
// (their code is in the metrics for the helpdesk).
function plainError({ code, message }) {
  if (code && (code.endsWith('-token') || code.startsWith('recording-') || code === 'not-allowed' || code === 'consent-needed')) return message;
  if (code === 'resume-expired') return 'The call dropped for too long to carry on. Press Join again.';
  if (code === 'restarting') return message;
  return 'Something went wrong with the call. Join it again; if this keeps happening, phone the hub.';
}

const CAMERA_LOST = 'The camera stopped: another app may be using it. Trying again…';

// The camera through the call: reopened when lost, switched on request.
function watchCamera(call) {
  camera = new CameraKeeper(call, metrics);
  camera.addEventListener('camera', (e) => {
    const shown = $('call-message').textContent === CAMERA_LOST;
    const lost = e.detail.state === 'lost';
    // Said once however many tries fail; cleared when the camera is back.
    if (lost && !shown) {
      say('call-message', CAMERA_LOST);
      announce('Your camera stopped. Trying again.');
    } else if (!lost && shown) {
      say('call-message', '');
    }
    $('self-video').srcObject = localStream;
  });
  camera.cameras().then((all) => {
    $('switch-camera-button').hidden = all.length < 2;
  }, () => {});
}

function end(title, message) {
  if (camera) camera.stop();
  awake.stop();
  show('ended');
  announce(`${title}. ${message || ''}`);
  // A home that called from its own page goes back there for the care plan.
  const homePage = sessionStorage.getItem('carecall.homePage');
  if (homePage && homePage.startsWith('/home?')) {
    $('home-page-link').querySelector('a').href = homePage;
    $('home-page-link').hidden = false;
  }
  $('self-video').srcObject = null;
  $('preview').srcObject = null;
  $('ended-title').textContent = title;
  $('ended-message').textContent = message || '';
  $('tiles').replaceChildren();
}

let audioOn = true;
let videoOn = true;
$('mute-button').onclick = () => {
  audioOn = !audioOn;
  $('mute-button').setAttribute('aria-pressed', String(!audioOn));
  $('mute-button').textContent = audioOn ? 'Mute' : 'Unmute';
  window.carecall.call.setMute(audioOn, videoOn);
};
$('camera-button').onclick = () => {
  videoOn = !videoOn;
  $('camera-button').setAttribute('aria-pressed', String(!videoOn));
  $('camera-button').textContent = videoOn ? 'Camera off' : 'Camera on';
  window.carecall.call.setMute(audioOn, videoOn);
};
$('switch-camera-button').onclick = () => {
  if (camera) camera.switchCamera();
};
$('ask-switch').onclick = () => {
  $('ask-prompt').hidden = true;
  if (camera) camera.switchCamera();
};
$('ask-dismiss').onclick = () => { $('ask-prompt').hidden = true; };
// Escape closes the request, as it closes any dialog.
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !$('ask-prompt').hidden) $('ask-prompt').hidden = true;
});
$('tap-to-hear').onclick = () => {
  speaker.unblock();
  $('tap-to-hear').hidden = true;
};
$('leave-button').onclick = () => {
  window.carecall.call.leave();
  end('You have left the call', 'You can close this page.');
};
const consent = new ConsentPrompt(() => window.carecall.call);
$('record-button').onclick = () => consent.press();
let recordingNoteTimer = null;
let noticeTimer = null;
$('rejoin-button').onclick = () => location.reload();
let rejoinTimer = null;
$('rejoin-offer').onclick = () => {
  window.carecall.call.leave();
  location.reload();
};
// Closing the tab or reloading leaves the call at once; without this the hub
// would hold the place for a resume. A page only hidden (another app, the
// screen locked) or kept for going back (`persisted`) stays in the call.
window.addEventListener('pagehide', (e) => {
  if (currentCall && !e.persisted) currentCall.leave();
});
document.addEventListener('visibilitychange', () => {
  const state = document.visibilityState;
  metrics.visibility = [...(metrics.visibility || []).slice(-10), `${state}@${Math.round(performance.now())}`];
  // Some tablets pause every video while the page is hidden.
  if (state === 'visible') {
    for (const v of document.querySelectorAll('#tiles video')) if (v.paused && v.srcObject) speaker.play(v);
  }
});
$('join-button').onclick = join;
$('retry-button').onclick = openDevices;
$('camera-select').onchange = openDevices;
$('mic-select').onchange = openDevices;

if (!navigator.mediaDevices || !window.RTCPeerConnection) {
  say('prejoin-message', 'This browser cannot make video calls. Use a current Chrome, Edge, Firefox or Safari. The page must be opened over https.');
} else {
  openDevices();
}
