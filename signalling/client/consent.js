// Consent to record, asked of the clinician before a recording starts: who
// agreed (the resident, a lasting power of attorney, a best-interests
// decision) and how. The hub refuses to record without it; until then the
// Record button says what it waits for, and pressing it asks.
const $ = (id) => document.getElementById(id);

export class ConsentPrompt {
  // `call()` returns the call in progress.
  constructor(call) {
    this.call = call;
    this.consent = null;
    this.recording = false;
    const form = $('consent-prompt');
    form.onsubmit = (e) => { e.preventDefault(); this.decide(true); };
    $('consent-refused').onclick = () => this.decide(false);
    $('consent-cancel').onclick = () => this.close();
    form.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.close(); });
  }

  // The call's entry, as the hub sent it (on joining, and on each change).
  update(consent) {
    this.consent = consent;
    this.label();
  }

  recordingChanged(active) {
    this.recording = active;
    this.label();
  }

  label() {
    let text = 'Stop recording';
    if (!this.recording) {
      if (this.consent && this.consent.given) text = 'Record';
      else text = this.consent ? 'Record (consent refused)' : 'Record (consent first)';
    }
    $('record-button').textContent = text;
  }

  // The Record button: stops, starts (with consent), or asks for it first.
  press() {
    if (this.recording) this.call().setRecording(false);
    else if (this.consent && this.consent.given) this.call().setRecording(true);
    else this.open();
  }

  open() {
    $('consent-note').textContent = this.consent
      ? 'Consent was refused for this call. Record the new decision if it has changed.'
      : '';
    $('consent-note').hidden = !this.consent;
    $('consent-prompt').hidden = false;
    $('consent-prompt').querySelector('input:checked').focus();
  }

  close() {
    $('consent-prompt').hidden = true;
    $('record-button').focus();
  }

  // Sends the decision; agreed, the recording starts straight after it (the
  // hub reads the two in order).
  decide(given) {
    const form = new FormData($('consent-prompt'));
    this.call().recordConsent(given, form.get('by'), form.get('how'));
    if (given) this.call().setRecording(true);
    this.close();
  }
}
