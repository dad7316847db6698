// The reports page: the service-level figures for a period beside the
// period before, as tables and plain SVG charts (no library, nothing
// fetched from elsewhere), and the exports' links.
import { $, el } from '/admin/common.js';

const ns = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs, text) => {
  const e = document.createElementNS(ns, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const form = $('report-form');
window.carecallReports = { loaded: 0 };

function duration(s) {
  if (s === null || s === undefined) return '–';
  return s < 120 ? `${Math.round(s)} s` : `${(s / 60).toFixed(1)} min`;
}
const percent = (x) => (x === null || x === undefined ? '–' : `${Math.round(x * 100)}%`);
const count = (x) => String(x);

// The summary's rows: label, how to read it from a report, how to show it.
const FIGURES = [
  ['Calls offered (a service was open)', (r) => r.totals.offered, count],
  ['Answered', (r) => r.totals.answered, count],
  ['Abandoned by the home', (r) => r.totals.abandoned, count],
  ['Declined by the hub', (r) => r.totals.declined, count],
  ['Calls while closed', (r) => r.totals.closed, count],
  ['Offered in hours', (r) => r.totals.in_hours, count],
  ['Offered out of hours', (r) => r.totals.out_of_hours, count],
  ['Answered within target', (r) => r.totals.share_within_target, percent],
  ['Median time to answer', (r) => r.totals.answer_seconds.median, duration],
  ['90% answered within', (r) => r.totals.answer_seconds.p90, duration],
  ['Median answer to clinician', (r) => r.totals.to_clinician_seconds.median, duration],
  ['Median wait for a clinician', (r) => r.totals.total_wait_seconds.median, duration],
  ['Residents seen', (r) => r.outcomes.encounters, count],
  ['Conveyances or admissions avoided', (r) => r.outcomes.conveyance_avoided, count],
];

function change(now, before, show) {
  if (now === null || before === null || now === undefined || before === undefined) return '–';
  const d = now - before;
  if (d === 0) return 'no change';
  // A share changes by percentage points, not by a percentage of itself.
  const size = show === percent ? `${Math.round(Math.abs(d) * 100)} points` : show(Math.abs(d));
  return `${d > 0 ? '+' : '−'}${size}`;
}

function table(head, rows) {
  const t = el('table');
  const hr = el('tr');
  for (const h of head) {
    const th = el('th', h);
    th.scope = 'col';
    hr.append(th);
  }
  t.append(el('thead'), el('tbody'));
  t.tHead.append(hr);
  for (const r of rows) {
    const tr = el('tr');
    r.forEach((cell, i) => {
      const c = el(i === 0 ? 'th' : 'td', cell);
      if (i === 0) c.scope = 'row';
      tr.append(c);
    });
    t.tBodies[0].append(tr);
  }
  return t;
}

// A bar chart: one bar per item, its value written above it; the figure's
// caption and the SVG's title say what it shows.
function bars(caption, items, show) {
  const w = items.length <= 4 ? 52 : 22, gap = 6, h = 120, top = 14, bottom = 18;
  const max = Math.max(1, ...items.map((i) => i.value || 0));
  const svg = svgEl('svg', {
    class: 'bars', role: 'img', width: items.length * (w + gap), height: h + top + bottom,
    'aria-label': `${caption}: ${items.map((i) => `${i.label} ${show(i.value)}`).join(', ')}`,
  });
  items.forEach((item, i) => {
    const bh = Math.round(((item.value || 0) / max) * h);
    const x = i * (w + gap);
    svg.append(svgEl('rect', { x, y: top + h - bh, width: w, height: bh }));
    if (item.value) svg.append(svgEl('text', { x: x + w / 2, y: top + h - bh - 3, 'text-anchor': 'middle' }, show(item.value)));
    svg.append(svgEl('text', { x: x + w / 2, y: top + h + 13, 'text-anchor': 'middle' }, item.label));
  });
  const fig = el('figure');
  fig.append(el('figcaption', caption), svg);
  return fig;
}

function breakdownRows(list) {
  return list.map((b) => [b.key, count(b.offered), count(b.answered), count(b.abandoned), count(b.declined), count(b.closed),
    duration(b.answer_seconds.median), duration(b.answer_seconds.p90), percent(b.share_within_target)]);
}
const BREAKDOWN = ['', 'Offered', 'Answered', 'Abandoned', 'Declined', 'While closed', 'Median answer', '90% within', 'Within target'];

function render(s) {
  const r = s.report;
  const p = s.previous.report;
  $('period').textContent = `${s.from} to ${s.to}, compared with ${s.previous.from} to ${s.previous.to}. ` +
    `Targets: urgent ${duration(s.targets.urgent_seconds)}, routine ${duration(s.targets.routine_seconds)}.`;
  $('summary').tBodies[0].replaceChildren(...FIGURES.map(([label, read, show]) => {
    const tr = el('tr');
    tr.dataset.figure = label;
    const th = el('th', label);
    th.scope = 'row';
    tr.append(th, el('td', show(read(r))), el('td', show(read(p))), el('td', change(read(r), read(p), show)));
    return tr;
  }));
  const short = (d) => d.slice(0, 3);
  $('charts').replaceChildren(
    bars('Calls offered by hour of day', r.by_hour.map((b) => ({ label: b.key, value: b.offered })), count),
    bars('Calls offered by day of the week', r.by_weekday.map((b) => ({ label: short(b.key), value: b.offered })), count),
    bars('Median time to answer by day (seconds)', r.by_weekday.map((b) => ({ label: short(b.key), value: b.answer_seconds.median })), (v) => String(Math.round(v))),
    bars('Answered within target (%)', r.by_urgency.map((b) => ({ label: b.key, value: b.share_within_target === null ? 0 : Math.round(b.share_within_target * 100) })), (v) => `${v}%`),
    bars('Outcomes', [
      { label: 'in home', value: r.outcomes.managed_in_home },
      { label: 'GP', value: r.outcomes.gp_follow_up },
      { label: 'referral', value: r.outcomes.community_referral },
      { label: 'ambulance', value: r.outcomes.ambulance_conveyance },
    ], count),
  );
  $('breakdowns').replaceChildren(
    el('h3', 'By urgency'), table(BREAKDOWN, breakdownRows(r.by_urgency)),
    el('h3', 'By service'), table(BREAKDOWN, breakdownRows(r.by_service)),
    el('h3', 'By what the call was about'), table(BREAKDOWN, breakdownRows(r.by_category)),
    el('h3', 'By home'), table(BREAKDOWN, breakdownRows(r.by_home)),
  );
  $('declined').replaceChildren(r.declined_reasons.length
    ? table(['Reason', 'Calls'], r.declined_reasons.map(([reason, n]) => [reason, count(n)]))
    : el('p', 'No call was declined.'));
  const o = r.outcomes;
  $('outcomes').replaceChildren(table(['Outcome', 'Encounters'], [
    ['Residents seen', o.encounters], ['With an outcome recorded', o.recorded],
    ['Managed in the home', o.managed_in_home], ['GP follow-up', o.gp_follow_up],
    ['Community referral', o.community_referral], ['Ambulance conveyance', o.ambulance_conveyance],
    ['Conveyance or admission avoided', o.conveyance_avoided], ['Medicines prescribed', o.medicines_prescribed],
    ['RESTORE2 used', o.restore2_used], ['ReSPECT in place, made or changed', o.respect_used],
  ].map(([k, v]) => [k, count(v)])));
}

function options(select, items, chosen) {
  const first = select.options[0];
  select.replaceChildren(first, ...items.map(([value, label]) => {
    const o = el('option', label);
    o.value = value;
    return o;
  }));
  select.value = chosen || '';
}

async function load() {
  const q = new URLSearchParams(location.search);
  for (const k of [...q.keys()]) if (!q.get(k)) q.delete(k);
  $('status').textContent = 'Loading…';
  const res = await fetch(`/admin/api/reports/summary?${q}`);
  if (res.status === 401) { location.href = '/admin/login'; return; }
  const s = await res.json().catch(() => ({}));
  if (!res.ok) { $('status').textContent = s.error || 'The report could not be made; try again.'; return; }
  form.from.value = s.from;
  form.to.value = s.to;
  options(form.home, s.homes.map((h) => [h.id, h.name]), s.home);
  options(form.service, s.services.map((n) => [n, n]), s.service);
  render(s);
  const period = new URLSearchParams({ from: s.from, to: s.to });
  if (s.home) period.set('home', s.home);
  if (s.service) period.set('service', s.service);
  $('exports').replaceChildren(...[['calls.csv', 'Calls (CSV)'], ['calls.json', 'Calls (JSON)'],
    ['encounters.csv', 'Encounters (CSV)'], ['encounters.json', 'Encounters (JSON)']].map(([file, label]) => {
    const li = el('li');
    const a = el('a', label);
    a.href = `/admin/api/reports/${file}?${period}`;
    li.append(a);
    return li;
  }));
  $('status').textContent = `Report for ${s.from} to ${s.to}.`;
  window.carecallReports = { loaded: window.carecallReports.loaded + 1, summary: s };
}

form.onsubmit = (e) => {
  e.preventDefault();
  const q = new URLSearchParams(new FormData(form));
  history.pushState(null, '', `?${q}`);
  load();
};
window.onpopstate = load;
$('print').onclick = () => window.print();
load();
