// The hub dashboard: live calls (polled every 2 s), the call history with
// activity charts, one past call in detail, join links.
import { $, el, post, setCsrf } from '/admin/common.js';

const cell = (text) => el('td', text ?? '–');
const ns = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs) => {
  const e = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

function badge(name, reasons) {
  const dot = el('span', name || 'no media yet', 'badge ' + (name || 'unknown'));
  if (reasons) dot.title = reasons.join('; ') || 'nothing wrong seen';
  return dot;
}

// A small line chart of kbit/s up and down and upload loss; the newest point
// at the right edge, `span` points across.
function sparkline(points, span, width = 150) {
  const h = 32;
  const svg = svgEl('svg', { width, height: h, class: 'chart' });
  const top = Math.max(1, ...points.map((q) => Math.max(q.up, q.down)));
  const line = (value, cls, scale) => {
    const n = points.length;
    const xy = points.map((q, i) =>
      `${width - ((n - 1 - i) / Math.max(1, span - 1)) * width},${h - 1 - (value(q) / scale) * (h - 2)}`);
    svg.append(svgEl('polyline', { class: cls, points: xy.join(' ') }));
  };
  line((q) => q.up, 'up', top);
  line((q) => q.down, 'down', top);
  line((q) => Math.min(q.loss, 0.2), 'loss', 0.2);
  const title = svgEl('title', {});
  title.textContent = `up/down kbit/s (peak ${top}), upload loss (red, top = 20%)`;
  svg.append(title);
  return svg;
}

// Vertical bars with a label under some of them.
function bars(values, labels, every) {
  const w = 12, gap = 2, h = 80, top = Math.max(1, ...values);
  const svg = svgEl('svg', { width: values.length * (w + gap), height: h + 16, class: 'bars' });
  values.forEach((v, i) => {
    const bh = (v / top) * h;
    const r = svgEl('rect', { x: i * (w + gap), y: h - bh, width: w, height: bh });
    const t = svgEl('title', {});
    t.textContent = `${labels[i]}: ${v} call(s)`;
    r.append(t);
    svg.append(r);
    if (i % every === 0) {
      const label = svgEl('text', { x: i * (w + gap), y: h + 12 });
      label.textContent = labels[i];
      svg.append(label);
    }
  });
  return svg;
}

// A column of buttons has no visible heading; a screen reader still hears one.
function table(headings, rows) {
  const t = el('table');
  const head = el('tr');
  headings.forEach((x) => {
    const th = el('th', x || '');
    if (!x) th.append(el('span', 'Actions', 'visually-hidden'));
    head.append(th);
  });
  t.append(head, ...rows);
  return t;
}

// The last 5 minutes of each live participant (150 polls, 2 s apart).
const recent = new Map();
function remember(key, p) {
  const points = recent.get(key) || [];
  points.push({ up: p.receive_kbps || 0, down: p.send_kbps || 0, loss: p.receive_loss || 0 });
  if (points.length > 150) points.shift();
  recent.set(key, points);
  return points;
}

async function session() {
  const res = await fetch('/admin/api/session');
  if (!res.ok) { location.href = '/admin/login'; return; }
  const s = await res.json();
  setCsrf(s.csrf);
  $('who').textContent = 'Signed in as ' + s.name;
}

async function endCall(room) {
  if (!confirm(`End the call in ${room} for everyone in it?`)) return;
  const res = await post(`/admin/api/rooms/${encodeURIComponent(room)}/end`);
  if (!res.ok) alert((await res.json().catch(() => ({}))).error || `failed (${res.status})`);
  refresh();
}

// The hub's nodes: live, stopped, or lost (silent without a word).
const NODE_STATES = { live: 'Live', stopped: 'Stopped', lost: 'Lost' };
async function refreshNodes() {
  const res = await fetch('/admin/api/nodes');
  if (!res.ok) return;
  const rows = (await res.json()).map((n) => {
    const tr = el('tr');
    tr.dataset.node = n.id;
    tr.dataset.state = n.state;
    tr.append(cell(n.this ? `${n.id} (this one)` : n.id), cell(n.url), cell(NODE_STATES[n.state] || n.state),
      cell(n.rooms), cell(n.participants), cell(`${n.silent_s} s ago`));
    return tr;
  });
  $('nodes').replaceChildren(table(['Node', 'Address', 'State', 'Calls', 'Participants', 'Last heard'], rows));
}

async function refresh() {
  refreshNodes().catch((e) => console.warn('nodes', e));
  const res = await fetch('/admin/api/rooms');
  if (res.status === 401) { location.href = '/admin/login'; return; }
  const rooms = await res.json();
  $('none').hidden = rooms.length > 0;
  $('rooms').replaceChildren(...rooms.map((r) => {
    const section = el('section', undefined, 'room');
    section.dataset.room = r.room;
    const h = el('h3', r.room);
    const end = el('button', 'End call', 'end-call');
    end.onclick = () => endCall(r.room);
    h.append(' ', end);
    const rows = r.participants.map((p) => {
      const tr = el('tr');
      tr.dataset.participant = p.participant;
      const loss = p.receive_loss == null ? null : (100 * p.receive_loss).toFixed(1) + '%';
      const quality = el('td');
      quality.append(badge(p.badge, p.reasons || []));
      const chart = el('td');
      chart.append(sparkline(remember(r.room + '/' + p.participant, p), 150));
      tr.append(quality, cell(p.participant), cell(p.role), cell(p.receive_kbps), cell(p.send_kbps),
        cell(p.rtt_ms), cell(loss), cell(p.transport), cell(p.reconnects), chart);
      return tr;
    });
    section.append(h, table(['Quality', 'Participant', 'Role', 'Up (kbit/s)', 'Down (kbit/s)', 'RTT (ms)',
      'Upload loss', 'Transport', 'Reconnects', 'Last 5 minutes'], rows));
    return section;
  }));
}

const time = (t) => (t ? t.slice(0, 16).replace('T', ' ') : 'running');
// A check's loss with how it fell and what it was counted over: 5% of
// 200 packets is a rougher reading than 5% of 2,000.
const lossText = (loss, pattern, packets) => (loss == null ? '–'
  : `${(100 * loss).toFixed(1)}%${pattern ? `, ${pattern}` : ''}${packets ? ` of ${packets} packets` : ''}`);
const duration = (s) => (s == null ? '–' : `${Math.floor(s / 60)} min ${s % 60} s`);

async function loadHistory() {
  const res = await fetch('/admin/api/history');
  if (!res.ok) return;
  const { calls, activity } = await res.json();
  const share = activity.calls ? Math.round((100 * activity.out_of_hours) / activity.calls) : 0;
  $('activity-summary').textContent =
    `${activity.calls} call(s); ${activity.out_of_hours} out of hours (${share}%).`;
  $('per-day').replaceChildren(
    bars(activity.per_day.map((d) => d[1]), activity.per_day.map((d) => d[0].slice(5)), 7));
  $('per-hour').replaceChildren(
    bars(activity.per_hour, activity.per_hour.map((_, i) => String(i).padStart(2, '0')), 3));
  const rows = calls.map((c) => {
    const tr = el('tr');
    tr.dataset.call = c.call_id;
    const quality = el('td');
    quality.append(badge(c.worst_quality));
    const open = el('button', 'Details');
    open.onclick = () => showCall(c.call_id);
    const action = el('td');
    action.append(open);
    const who = `${c.homes} home, ${c.operators} operator, ${c.clinicians} clinician, ${c.specialists} specialist, ${c.observers} observer`;
    tr.append(cell(time(c.started_at)), cell(c.room), cell(duration(c.duration_seconds)), cell(who),
      cell(c.out_of_hours ? 'yes' : 'no'), quality, cell(c.reconnects), action);
    return tr;
  });
  $('calls').replaceWith(Object.assign(
    table(['Started', 'Room', 'Duration', 'Participants', 'Out of hours', 'Worst quality', 'Reconnects', ''], rows),
    { id: 'calls' }));
}

// One past call: each participant's link over the call.
async function showCall(id) {
  const box = $('call-detail');
  const res = await fetch(`/admin/api/calls/${id}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { box.replaceChildren(el('p', body.error || `failed (${res.status})`)); return; }
  const rows = body.sessions.map(({ session: s, joined_at, left_at }) => {
    const tr = el('tr');
    const quality = el('td');
    quality.append(badge(s.worst_badge));
    const points = s.samples.map((q) => ({ up: q.receive_kbps, down: q.send_kbps, loss: q.receive_loss }));
    const heights = s.samples.map((q) => q.lowest_video_height).filter((x) => x != null);
    const switches = heights.filter((x, i) => i > 0 && x !== heights[i - 1]).length;
    const chart = el('td');
    chart.append(sparkline(points, points.length, 300));
    tr.append(cell(s.participant), cell(s.role), cell(time(joined_at)), cell(time(left_at)), cell(s.transport),
      quality, cell(s.reconnects), cell(switches), chart);
    return tr;
  });
  box.replaceChildren(el('h3', `Call ${id} in ${body.call.room}`),
    table(['Participant', 'Role', 'Joined', 'Left', 'Transport', 'Worst quality', 'Reconnects',
      'Layer switches', 'Up/down and loss over the call'], rows));
  if (body.hub_call) box.append(...hubCallSteps(body.hub_call));
}

// A care home's call through the queue: each step with its time.
function hubCallSteps(h) {
  const said = { queued: 'called the hub', answered: 'answered', transferred: 'passed the call to',
    accepted: 'took the call', invited: 'invited', joined: 'joined', cancelled: 'cancelled', ended: 'call ended' };
  const rows = h.steps.map((s) => {
    const tr = el('tr');
    tr.dataset.step = s.kind;
    const target = s.target.startsWith('queue:') ? `the ${s.target.slice(6)} queue` : s.target;
    tr.append(cell(time(s.at)), cell(`+${Math.round(s.after_seconds)} s`), cell([s.actor, said[s.kind] || s.kind, target].filter(Boolean).join(' ')));
    return tr;
  });
  const reason = [h.urgent ? 'urgent' : 'routine', h.reason, h.initials && `resident ${h.initials}`].filter(Boolean).join(', ');
  return [el('h4', `${h.home} called the hub (${reason})`), table(['Time', 'After', 'What happened'], rows)];
}

// A connectivity check by its code: verdict, each path, throughput.
$('check-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const code = new FormData(e.target).get('code').trim();
  const out = $('check-out');
  const res = await fetch(`/admin/api/checks/${encodeURIComponent(code)}`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { out.replaceChildren(el('p', body.error || `failed (${res.status})`)); return; }
  const r = body.result;
  const pathText = (p) => (p.ok ? `pass${p.rtt_ms != null ? `, ${p.rtt_ms} ms round trip` : ''}` : `fail: ${p.error || 'no connection'}`);
  const kbps = (k) => (k == null ? '–' : `${(k / 1000).toFixed(1)} Mbps`);
  const rows = [
    ['Checked', `${time(body.at)} from ${body.remote_addr}`],
    ['Browser', body.user_agent],
    ['Camera', r.camera.ok ? `working: ${r.camera.detail}` : `not working: ${r.camera.detail}`],
    ['Microphone', r.microphone.ok ? `working: ${r.microphone.detail}` : `not working: ${r.microphone.detail}`],
    ['UDP', pathText(r.udp)],
    ['TCP', pathText(r.tcp)],
    ['TURN over TLS', pathText(r.turn_tls)],
    ['Download', kbps(r.download_kbps)],
    ['Upload', kbps(r.upload_kbps)],
    ['Loss on the way up', lossText(r.loss, r.loss_pattern, r.loss_packets)],
    ['Loss on the way down', lossText(r.download_loss, r.download_loss_pattern, r.download_loss_packets)],
    ['Jitter on the way down', r.download_jitter_ms == null ? '–' : `${r.download_jitter_ms} ms`],
    ['Round trip idle, sending, receiving', [r.idle_rtt_ms, r.sending_rtt_ms, r.receiving_rtt_ms]
      .map((t) => (t == null ? '–' : `${t} ms`)).join(', ')],
  ].map(([k, v]) => { const tr = el('tr'); tr.dataset.field = k; tr.append(el('th', k), cell(v)); return tr; });
  const notes = el('ul');
  notes.append(...body.verdict.notes.map((n) => el('li', n)));
  const headline = el('h3', `${body.code}: ${body.verdict.headline}`);
  headline.dataset.outcome = body.verdict.outcome;
  const t = el('table');
  t.append(...rows);
  out.replaceChildren(headline, notes, t);
});

$('link-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const out = $('link-out');
  const res = await post('/admin/api/links',
    { room: f.get('room'), role: f.get('role'), name: f.get('name'), hours: Number(f.get('hours')) });
  const body = await res.json().catch(() => ({}));
  out.textContent = res.ok ? body.link : (body.error || ('failed (' + res.status + ')'));
});

$('signout').addEventListener('click', async () => {
  await post('/admin/logout');
  location.href = '/admin/login';
});

const localTime = (ms) => (ms ? new Date(ms).toLocaleString() : '–');

async function loadRecordings() {
  const res = await fetch('/admin/api/recordings');
  if (!res.ok) return;
  const list = await res.json();
  $('recordings-none').hidden = list.length > 0;
  const rows = list.map((r) => {
    const tr = el('tr');
    const get = el('td');
    if (r.download_url) {
      const a = el('a', 'download');
      a.href = r.download_url;
      get.append(a);
    }
    tr.append(cell(localTime(r.started_at_ms)), cell(r.room), cell(r.state),
      cell(r.duration_ms ? (r.duration_ms / 1000).toFixed(1) + ' s' : null),
      cell(r.size ? (r.size / 1e6).toFixed(1) + ' MB' : null), cell(r.encrypted ? 'sealed' : 'plain'), get);
    return tr;
  });
  $('recordings').replaceWith(Object.assign(
    table(['started', 'room', 'state', 'length', 'size', 'at rest', ''], rows), { id: 'recordings' }));
}

async function loadDeadLetters() {
  const res = await fetch('/admin/api/hooks/dead-letters');
  if (!res.ok) return;
  const list = (await res.json()).dead_letters;
  $('dead-none').hidden = list.length > 0;
  const rows = list.map((d) => {
    const tr = el('tr');
    const retry = el('button', 'Retry');
    retry.addEventListener('click', async () => {
      retry.disabled = true;
      const r = await post(`/admin/api/hooks/dead-letters/${d.seq}/retry`);
      retry.textContent = r.ok ? 'Retrying' : 'Failed';
      loadDeadLetters();
    });
    const action = el('td');
    action.append(retry);
    tr.append(cell(localTime(d.failed_at_ms)), cell(d.kind), cell(String(d.consultation)),
      cell(d.endpoint), cell(String(d.attempts)), cell(d.reason), action);
    return tr;
  });
  $('dead-letters').replaceWith(Object.assign(
    table(['given up', 'event', 'call', 'receiver', 'attempts', 'why', ''], rows), { id: 'dead-letters' }));
}

// Consultations with a clinician that ended past the due time without an
// outcome for every resident.
async function loadMissing() {
  const res = await fetch('/admin/api/outcomes/missing');
  if (!res.ok) return;
  const { missing, due_hours: due } = await res.json();
  $('missing-none').hidden = missing.length > 0;
  const rows = missing.map((m) => {
    const tr = el('tr');
    tr.dataset.consultation = m.consultation;
    const what = m.residents ? `${m.without_outcome} of ${m.residents} residents without an outcome` : 'no resident attached';
    tr.append(cell(String(m.consultation)), cell(m.room), cell(localTime(m.ended_at_ms)), cell(`outcome missing: ${what}`));
    return tr;
  });
  $('missing').replaceWith(Object.assign(
    table(['call', 'room', `ended (over ${due} h ago)`, 'what is missing'], rows), { id: 'missing' }));
}

async function loadAudit() {
  const res = await fetch('/admin/api/audit?limit=50');
  if (!res.ok) return;
  const rows = (await res.json()).entries.map((e) => {
    const tr = el('tr');
    tr.append(cell(localTime(e.at_ms)), cell(e.account), cell(e.from), cell(e.action), cell(e.subject));
    return tr;
  });
  $('audit').replaceWith(Object.assign(
    table(['when', 'who', 'from', 'what', 'about'], rows), { id: 'audit' }));
}

function loadSlow() {
  loadHistory();
  loadMissing();
  loadRecordings();
  loadDeadLetters();
  loadAudit();
}

session().then(() => { refresh(); loadSlow(); });
setInterval(refresh, 2000);
setInterval(loadSlow, 30000);

// Care homes: add, rename, withdraw a link, issue a new one.
async function loadHomes() {
  const res = await fetch('/admin/api/homes');
  const body = await res.json().catch(() => ({}));
  const box = $('homes');
  if (!res.ok) { box.replaceChildren(el('p', body.error || `failed (${res.status})`)); return; }
  const act = (label, run) => { const b = el('button', label); b.onclick = run; return b; };
  const change = async (url, body) => {
    const r = await post(url, body);
    if (!r.ok) alert((await r.json().catch(() => ({}))).error || `failed (${r.status})`);
    loadHomes();
  };
  const rows = body.homes.map((h) => {
    const tr = el('tr');
    tr.dataset.home = h.id;
    const actions = el('td');
    actions.append(
      act('Helpdesk', () => helpdesk(h)),
      act('Rename', () => { const n = prompt('New name', h.name); if (n) change(`/admin/api/homes/${h.id}/rename`, { name: n }); }),
      act('New link', () => confirm(`Give ${h.name} a new link? The old one stops working.`) && change(`/admin/api/homes/${h.id}/reissue`)),
    );
    if (h.active) actions.append(act('Withdraw link', () => confirm(`Withdraw ${h.name}'s link?`) && change(`/admin/api/homes/${h.id}/revoke`)));
    const link = el('td', h.link || 'withdrawn');
    link.className = 'link';
    tr.append(cell(h.name), link, actions);
    return tr;
  });
  box.replaceChildren(table(['Home', 'Link', ''], rows));
}
// One home for the helpdesk: the checks run from its page beside how its
// latest calls went.
async function helpdesk(h) {
  const box = $('helpdesk');
  const res = await fetch(`/admin/api/homes/${h.id}/helpdesk`);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { box.replaceChildren(el('p', body.error || `failed (${res.status})`)); return; }
  const yes = (ok) => (ok ? 'yes' : 'no');
  const mbps = (k) => (k == null ? '–' : `${(k / 1000).toFixed(1)} Mbps`);
  const pct = (x) => (x == null ? '–' : `${(x * 100).toFixed(1)}%`);
  const ms = (t) => (t == null ? '–' : `${t} ms`);
  const checks = body.checks.map((c) => {
    const tr = el('tr');
    tr.append(cell(c.at), cell(c.code), cell(c.verdict.headline), cell(yes(c.result.udp && c.result.udp.ok)),
      cell(`${pct(c.result.loss)} up, ${pct(c.result.download_loss)} down`), cell(mbps(c.result.upload_kbps)), cell(mbps(c.result.download_kbps)),
      cell(`${ms(c.result.idle_rtt_ms)} idle, ${ms(c.result.sending_rtt_ms)} sending`));
    return tr;
  });
  const calls = body.calls.map((c) => {
    const tr = el('tr');
    tr.append(cell(c.queued_at), cell(c.outcome), cell(c.worst_quality || '–'), cell(String(c.reconnects)),
      cell(c.transport || '–'), cell(c.answer_seconds == null ? '–' : `${Math.round(c.answer_seconds)} s`));
    return tr;
  });
  const title = el('h3', `Helpdesk: ${body.home}`);
  box.replaceChildren(title,
    el('h4', 'Checks run from its page (newest first)'),
    checks.length ? table(['When', 'Code', 'Verdict', 'Video over UDP', 'Loss', 'Upload', 'Download', 'Round trip'], checks) : el('p', 'No check yet: the home\'s page has a "Check this tablet" link.'),
    el('h4', 'Its latest calls'),
    calls.length ? table(['Called', 'Outcome', 'Worst quality', 'Reconnects', 'Transport', 'Answered after'], calls) : el('p', 'No call yet.'));
  box.dataset.home = h.id;
}

$('home-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = new FormData(e.target).get('name');
  const res = await post('/admin/api/homes', { name });
  if (!res.ok) alert((await res.json().catch(() => ({}))).error || `failed (${res.status})`);
  e.target.reset();
  loadHomes();
});
loadHomes();
