// The care home's "Call the hub" page: one big button, an optional reason,
// then the place in the queue until someone answers, and into the call.
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('t') || '';
let call = null;
let previewStream = null;

function say(id, text) {
  $(id).textContent = text;
  $(id).hidden = !text;
}

// The call page's camera request (1280x720): asking the same here keeps the
// camera in HD when the call page opens it while this preview still holds it;
// a plain `video: true` opens it at 640x480, and the call can inherit that.
const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

async function preview() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: CAMERA, audio: false });
    previewStream = stream;
    $('preview').srcObject = stream;
    $('waiting-preview').srcObject = stream;
  } catch (e) {
    // The call page asks again; the queue does not need the camera.
  }
}

async function placeCall() {
  $('call-button').disabled = true;
  const urgent = document.querySelector('input[name=urgency]:checked').value === 'urgent';
  const res = await fetch('/home/api/calls', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, urgent, category: $('category').value, reason: $('reason').value, initials: $('initials').value }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    say('ask-message', body.error || 'The hub could not be called. Try again.');
    $('call-button').disabled = false;
    return;
  }
  call = body.call;
  $('ask').hidden = true;
  $('waiting').hidden = false;
  show(body);
  poll();
}

function show(s) {
  window.carecallHome = { call, status: s };
  if (s.state === 'waiting') {
    const wait = s.estimated_wait_seconds ? ` About ${Math.max(1, Math.round(s.estimated_wait_seconds / 60))} min.` : '';
    $('position').textContent = `You are number ${s.position} in the queue.${wait}`;
    document.title = `Number ${s.position} in the queue for the hub`;
    // Nobody has answered for a long time: say so plainly, and how else to
    // reach the hub. The call keeps its place.
    if (s.no_answer) {
      const phone = s.no_answer.phone ? ` phone the hub on ${s.no_answer.phone}` : ' phone the hub';
      say('no-answer', `Nobody has answered yet. If you cannot wait,${phone}. You keep your place in the queue.`);
    }
  } else if (s.state === 'answered' || s.state === 'transferring') {
    $('waiting-title').textContent = `${s.with_you} is answering`;
    say('no-answer', '');
    // The status line is the live region: a screen reader hears who answered.
    $('position').textContent = `${s.with_you} is answering. Joining the call…`;
    document.title = 'The hub is answering';
    if (s.join_url) {
      // Let go of the camera before the call page asks for it.
      if (previewStream) previewStream.getTracks().forEach((t) => t.stop());
      // The call page's end screen leads back here, where the plan will be.
      sessionStorage.setItem('carecall.homePage', location.pathname + location.search);
      location.href = `${s.join_url}&go=1`;
    }
  } else if (s.state === 'closed') {
    // Every service is closed: say where else to turn, at once.
    $('waiting-title').textContent = 'The hub is closed now';
    document.title = 'The hub is closed now';
    $('position').textContent = `${s.closed.message} Phone: ${s.closed.phone}.`;
    $('cancel-button').hidden = true;
  } else if (s.state === 'declined') {
    $('waiting-title').textContent = 'The hub cannot take this call';
    document.title = 'The hub cannot take this call';
    const phone = s.declined.phone ? ` To talk it over, phone the hub on ${s.declined.phone}.` : '';
    $('position').textContent = `Reason: ${s.declined.reason}.${phone}`;
    $('cancel-button').hidden = true;
  } else if (s.state === 'cancelled') {
    $('waiting-title').textContent = 'Call cancelled';
    document.title = 'Call cancelled';
    $('position').textContent = 'You can close this page, or reload it to call again.';
  } else if (s.state === 'ended') {
    $('waiting-title').textContent = 'The call has ended';
    document.title = 'The call has ended';
    $('position').textContent = 'You can close this page, or reload it to call again.';
  }
}

async function poll() {
  if (call === null) return;
  const res = await fetch(`/home/api/calls/${call}?t=${encodeURIComponent(token)}`);
  const body = await res.json().catch(() => ({}));
  if (res.ok) show(body);
  else $('position').textContent = body.error || 'The hub cannot be reached; still trying.';
  if (!res.ok || body.state === 'waiting') setTimeout(poll, 2000);
}

// The care plans the hub wrote for this home's calls in the last 72 hours,
// newest first: shown when the page opens, and again every 30 s, so a plan
// written after the call still arrives.
async function plans() {
  const res = await fetch(`/home/api/plans?t=${encodeURIComponent(token)}`).catch(() => null);
  const body = res && res.ok ? await res.json().catch(() => null) : null;
  if (body) {
    window.carecallHome = { ...(window.carecallHome || {}), plans: body.plans };
    $('plan-list').replaceChildren(...body.plans.map(showPlan));
    $('plans').hidden = !body.plans.length;
  }
  setTimeout(plans, 30000);
}

function showPlan(p) {
  const item = document.createElement('article');
  item.className = 'plan';
  const title = document.createElement('h3');
  const who = p.initials ? `For ${p.initials}, from` : 'From';
  title.textContent = `${who} ${p.by}, ${new Date(p.at_ms).toLocaleString()}`;
  const text = document.createElement('p');
  text.textContent = p.plan.text;
  const actions = document.createElement('ul');
  actions.append(...p.plan.actions.map((a) => {
    const li = document.createElement('li');
    li.textContent = a.when ? `${a.what}: ${a.when}` : a.what;
    return li;
  }));
  item.append(title, text, actions);
  return item;
}

$('print-button').onclick = () => window.print();
$('call-button').onclick = placeCall;
$('cancel-button').onclick = async () => {
  await fetch(`/home/api/calls/${call}/cancel?t=${encodeURIComponent(token)}`, { method: 'POST' });
  poll();
};
// The hub's list of what a call can be about.
async function form() {
  const res = await fetch(`/home/api/form?t=${encodeURIComponent(token)}`).catch(() => null);
  const body = res && res.ok ? await res.json().catch(() => null) : null;
  if (!body) return;
  $('category').append(...body.categories.map((c) => {
    const o = document.createElement('option');
    o.textContent = c;
    o.value = c;
    return o;
  }));
}

// The check, filed under this home.
$('check-link').href = `/check?t=${encodeURIComponent(token)}`;

preview();
form();
plans();
