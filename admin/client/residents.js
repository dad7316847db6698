// The residents a clinician sees in the call they have open: each added by
// NHS number, name and date of birth (one encounter each). The hub checks
// the number's check digit, seals the details, and notes every look at them.
import { $ } from '/admin/common.js';

export class ResidentsPanel {
  // `post(url, body)` sends with the session's CSRF token; `call()` is the
  // hub call open in the console.
  constructor(post, call) {
    this.post = post;
    this.call = call;
    $('resident-form').onsubmit = (e) => { e.preventDefault(); this.add(); };
    $('outcome-form').onsubmit = (e) => { e.preventDefault(); this.saveOutcome(); };
  }

  // Shown for clinicians and specialists, for the call just opened.
  open(role) {
    $('residents').hidden = !['clinician', 'specialist'].includes(role);
    $('resident-problem').textContent = '';
    $('resident-list').replaceChildren();
    $('outcome-form').hidden = true;
    if (!$('residents').hidden) this.refresh();
  }

  async refresh() {
    const res = await fetch(`/admin/api/hub/calls/${this.call()}/residents`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      $('resident-problem').textContent = body.error || 'The residents could not be read.';
      return;
    }
    window.carecallHub.encounters = body.encounters;
    $('resident-list').replaceChildren(...body.encounters.map((e) => {
      const li = document.createElement('li');
      const r = e.resident;
      li.textContent = `${r.name}, born ${r.birth_date}, NHS number ${r.nhs_number.replace(/(\d{3})(\d{3})(\d{4})/, '$1 $2 $3')} `;
      li.dataset.encounter = e.id;
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'outcome';
      button.textContent = `Outcome for ${r.name}`;
      button.onclick = () => this.openOutcome(e.id, r.name);
      li.append(button);
      return li;
    }));
  }

  openOutcome(encounter, name) {
    const form = $('outcome-form');
    form.reset();
    form.elements.encounter.value = encounter;
    $('outcome-title').textContent = `Outcome for ${name}`;
    $('outcome-problem').textContent = '';
    form.hidden = false;
    form.elements.disposition.focus();
  }

  async saveOutcome() {
    const f = $('outcome-form').elements;
    const whats = [...$('outcome-form').querySelectorAll('input[name=what]')];
    const whens = [...$('outcome-form').querySelectorAll('input[name=when]')];
    const actions = whats.map((w, i) => ({ what: w.value.trim(), when: whens[i].value.trim() }))
      .filter((a) => a.what);
    const res = await this.post(`/admin/api/encounters/${f.encounter.value}/outcome`, {
      disposition: f.disposition.value,
      conveyance_avoided: f.conveyance_avoided.checked,
      medicines_prescribed: f.medicines_prescribed.checked,
      restore2_used: f.restore2_used.checked,
      news2: f.news2.value === '' ? null : Number(f.news2.value),
      respect: f.respect.value,
      treatment_plan: f.treatment_plan.checked,
      referrals: f.referrals.value,
      note: f.note.value,
      care_plan: { text: f.plan.value, actions },
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      $('outcome-problem').textContent = body.error || 'The outcome could not be saved.';
      return;
    }
    $('outcome-form').hidden = true;
    $('resident-problem').textContent = body.amended ? 'Outcome changed; the plan was sent again.' : 'Outcome saved; the home has the plan.';
  }

  // One add at a time: on a hub of several nodes the answer may take a few
  // seconds, and a second press would attach the resident twice.
  async add() {
    const button = $('resident-form').querySelector('button[type=submit]');
    if (button.disabled) return;
    button.disabled = true;
    try {
      const form = new FormData($('resident-form'));
      const res = await this.post(`/admin/api/hub/calls/${this.call()}/residents`, {
        nhs_number: form.get('nhs_number'),
        name: form.get('name'),
        birth_date: form.get('birth_date'),
      });
      const body = await res.json().catch(() => ({}));
      if (!res.ok) {
        $('resident-problem').textContent = body.error || 'The resident could not be added.';
        return;
      }
      $('resident-problem').textContent = '';
      $('resident-form').reset();
      await this.refresh();
    } finally {
      button.disabled = false;
    }
  }
}
