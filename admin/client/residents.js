// The residents a clinician sees in the call they have open: each added by
// NHS number, name and date of birth (one encounter each). The hub checks
// the number's check digit, seals the details, and notes every look at them.
const $ = (id) => document.getElementById(id);

export class ResidentsPanel {
  // `post(url, body)` sends with the session's CSRF token; `call()` is the
  // hub call open in the console.
  constructor(post, call) {
    this.post = post;
    this.call = call;
    $('resident-form').onsubmit = (e) => { e.preventDefault(); this.add(); };
  }

  // Shown for clinicians and specialists, for the call just opened.
  open(role) {
    $('residents').hidden = !['clinician', 'specialist'].includes(role);
    $('resident-problem').textContent = '';
    $('resident-list').replaceChildren();
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
      li.textContent = `${r.name}, born ${r.birth_date}, NHS number ${r.nhs_number.replace(/(\d{3})(\d{3})(\d{4})/, '$1 $2 $3')}`;
      li.dataset.encounter = e.id;
      return li;
    }));
  }

  async add() {
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
  }
}
