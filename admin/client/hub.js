// The hub console: the waiting calls (pushed over a WebSocket on every
// change, with a sound on a new call), what waits for you (a call passed to
// you, an invitation), and the call you are in, with transfer and invite.
import { $, el, post, setCsrf } from '/admin/common.js';
import { ResidentsPanel } from '/admin/residents.js';

const hub = { chimes: 0, snapshot: null, call: null };
window.carecallHub = hub;
let me = null;
const seen = new Set();
let firstSnapshot = true;

const residents = new ResidentsPanel(post, () => hub.call);

function problem(text) {
  $('problem').textContent = text || '';
}

// A short two-note chime. Browsers only let a page make sound after a click
// on it, so the context is resumed on every click too.
let audio = null;
function chime() {
  hub.chimes += 1;
  try {
    audio = audio || new AudioContext();
    audio.resume();
    for (const [i, freq] of [880, 660].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.2, audio.currentTime + i * 0.25);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + i * 0.25 + 0.22);
      osc.connect(gain).connect(audio.destination);
      osc.start(audio.currentTime + i * 0.25);
      osc.stop(audio.currentTime + i * 0.25 + 0.25);
    }
  } catch (e) {
    // No sound device: the list still changes.
  }
}
document.addEventListener('click', () => { if (audio) audio.resume(); });

function minutes(seconds) {
  return seconds < 60 ? `${seconds} s` : `${Math.floor(seconds / 60)} min`;
}

function describe(c) {
  const parts = [c.category, c.reason, c.initials && `resident ${c.initials}`].filter(Boolean);
  return parts.join(', ') || '–';
}

function renderQueue(queue) {
  $('queue-section').hidden = !me || me.role === 'specialist';
  $('queue-empty').hidden = queue.length > 0;
  $('queue-table').hidden = queue.length === 0;
  $('queue').replaceChildren(...queue.map((c) => {
    const tr = el('tr');
    tr.dataset.call = c.call;
    tr.classList.toggle('urgent', c.urgent);
    tr.classList.toggle('overdue', c.overdue);
    const answer = el('button', 'Answer', 'answer');
    answer.onclick = () => take(`/admin/api/queue/${c.call}/answer`, answer);
    const decline = el('button', 'Decline', 'decline');
    decline.setAttribute('aria-label', `Decline the call from ${c.home}`);
    decline.onclick = () => askDecline(c);
    tr.append(
      el('td', String(c.position)),
      el('td', c.urgent ? `${c.home} (urgent)` : c.home),
      el('td', c.queue),
      el('td', describe(c)),
      el('td', minutes(c.waiting_seconds)),
      el('td'),
    );
    tr.lastChild.append(answer);
    // A call answered before and passed on has the home in it already.
    if (!c.answered) tr.lastChild.append(' ', decline);
    return tr;
  }));
  // A call passed to another queue waits anew there: it chimes again.
  const key = (c) => `${c.call}@${c.waiting_since_ms}`;
  const fresh = queue.filter((c) => !seen.has(key(c)));
  for (const c of queue) seen.add(key(c));
  if (fresh.length && !firstSnapshot) chime();
}

function renderForYou(items) {
  $('for-you-section').hidden = items.length === 0;
  $('for-you').replaceChildren(...items.map((c) => {
    const li = el('li');
    li.dataset.call = c.call;
    const what = c.kind === 'transfer' ? 'Passed to you' : 'You are invited to join';
    li.append(el('span', `${what}: ${c.home}${c.urgent ? ' (urgent)' : ''} — ${describe(c)} `));
    const join = el('button', c.kind === 'transfer' ? 'Take call' : 'Join', 'accept');
    join.onclick = () => take(`/admin/api/hub/calls/${c.call}/accept`, join);
    li.append(join);
    return li;
  }));
  const fresh = items.filter((c) => !seen.has(`you-${c.kind}-${c.call}`));
  for (const c of items) seen.add(`you-${c.kind}-${c.call}`);
  if (fresh.length && !firstSnapshot) chime();
}

function renderChoices(s) {
  const to = $('transfer-to');
  const current = to.value;
  const options = [
    ...s.clinicians.filter((n) => n !== s.me.name).map((n) => [`clinician:${n}`, `${n} (clinician)`]),
    ...s.queues.map((q) => [`queue:${q}`, `the ${q} queue`]),
  ];
  to.replaceChildren(...options.map(([value, label]) => {
    const o = el('option', label);
    o.value = value;
    return o;
  }));
  if (current) to.value = current;
  const who = $('invite-who');
  const chosen = who.value;
  who.replaceChildren(el('option', '—'), ...s.specialists.map((n) => {
    const o = el('option', n);
    o.value = n;
    return o;
  }));
  who.firstChild.value = '';
  if (chosen) who.value = chosen;
  $('invite-form').hidden = !['clinician', 'admin'].includes(s.me.role);
}

function render(s) {
  hub.snapshot = s;
  me = s.me;
  $('who').textContent = `${s.me.name} (${s.me.role})`;
  renderQueue(s.queue);
  renderForYou(s.for_you);
  renderChoices(s);
  firstSnapshot = false;
}

// Opens the call in the panel: straight in, no second button to press.
function open(body) {
  hub.call = body.call;
  $('current').hidden = false;
  $('current-title').textContent = `In a call with ${body.home}`;
  $('handover').hidden = me && me.role === 'specialist';
  $('handover-out').textContent = '';
  $('call-frame').src = `${body.join_url}&go=1`;
  residents.open(me && me.role);
}

// Declining asks for one of the hub's reasons first; the home is shown it.
let declining = null;
function askDecline(c) {
  declining = c.call;
  $('decline-home').textContent = `${c.home}${c.urgent ? ' (urgent)' : ''}: ${describe(c)}`;
  $('decline-reason').replaceChildren(...(hub.snapshot.decline_reasons || []).map((r) => el('option', r)));
  $('decline-dialog').showModal();
}

$('decline-dialog').onclose = async () => {
  if ($('decline-dialog').returnValue !== 'decline' || declining === null) return;
  const res = await post(`/admin/api/queue/${declining}/decline`, { reason: $('decline-reason').value });
  const body = await res.json().catch(() => ({}));
  problem(res.ok ? '' : (body.error || 'The call could not be declined.'));
};

async function take(url, button) {
  button.disabled = true;
  const res = await post(url);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    problem(body.error || 'That did not work; try again.');
    button.disabled = false;
    return;
  }
  problem('');
  open(body);
}

$('transfer-form').onsubmit = async (e) => {
  e.preventDefault();
  const [kind, name] = $('transfer-to').value.split(/:(.*)/s);
  const res = await post(`/admin/api/hub/calls/${hub.call}/transfer`, { [kind]: name });
  const body = await res.json().catch(() => ({}));
  $('handover-out').textContent = res.ok
    ? `Passed to ${kind === 'queue' ? `the ${name} queue` : name}. Stay until they join, then leave the call.`
    : (body.error || 'The call could not be passed on.');
};

$('invite-form').onsubmit = async (e) => {
  e.preventDefault();
  const guest = $('invite-guest').value.trim();
  const specialist = $('invite-who').value;
  const res = await post(`/admin/api/hub/calls/${hub.call}/invite`, guest ? { guest } : { specialist });
  const body = await res.json().catch(() => ({}));
  const out = $('handover-out');
  out.replaceChildren();
  if (!res.ok) {
    out.textContent = body.error || 'The invitation could not be sent.';
    return;
  }
  out.append(el('span', `Invited ${body.specialist}${guest ? '' : ' (told in their console)'}. Link to send by other means: `));
  const link = el('a', body.join_url);
  link.href = body.join_url;
  link.target = '_blank';
  out.append(link);
};

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/admin/api/hub/ws`);
  ws.onopen = () => { $('live').textContent = 'live'; $('live').className = 'badge green'; };
  ws.onmessage = (e) => {
    const s = JSON.parse(e.data);
    if (s.type === 'hub') render(s);
    else if (s.type === 'error') problem(s.message);
  };
  ws.onclose = async (e) => {
    $('live').textContent = 'reconnecting…';
    $('live').className = 'badge amber';
    // Signed out (here, elsewhere, or the sign-in expired): sign in again
    // rather than miss calls behind a console that cannot reconnect.
    const session = await fetch('/admin/api/session').catch(() => null);
    if (e.code === 4001 || (session && session.status === 401)) {
      location.href = '/admin/login';
      return;
    }
    setTimeout(connect, 2000);
  };
}

$('signout').onclick = async () => {
  await post('/admin/logout');
  location.href = '/admin/login';
};

(async () => {
  const res = await fetch('/admin/api/session');
  if (!res.ok) { location.href = '/admin/login'; return; }
  const s = await res.json();
  setCsrf(s.csrf);
  connect();
})();
