// Clinical still images on the page (docs/images.md): the home's tablet
// captures a full-resolution still when hub staff ask, and sends it in
// pieces that resume after a drop, paced to leave the call's audio room.

const PIECE = 16 * 1024;

// A still from `track` at its camera's full resolution: ImageCapture's
// photo where the browser has it, else the largest frame of a clone.
export async function takeStill(track) {
  if ('ImageCapture' in window) {
    try {
      const photo = await withTimeout(new ImageCapture(track).takePhoto(), 4000);
      if (photo && photo.size > 0) return photo;
    } catch (_) { /* fall back to a frame */ }
  }
  const clone = track.clone();
  try {
    const caps = clone.getCapabilities ? clone.getCapabilities() : {};
    if (caps.width && caps.height) {
      await clone.applyConstraints({ width: caps.width.max, height: caps.height.max }).catch(() => {});
    }
    const video = document.createElement('video');
    video.muted = true;
    video.playsInline = true;
    video.srcObject = new MediaStream([clone]);
    await video.play();
    await new Promise((r) => ('requestVideoFrameCallback' in video ? video.requestVideoFrameCallback(r) : setTimeout(r, 200)));
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    video.srcObject = null;
    return await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.92));
  } finally {
    clone.stop();
  }
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, no) => setTimeout(() => no(new Error('timeout')), ms))]);
}

async function sha256Hex(bytes) {
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// Sends `blob` under `ticket`. `rateBps()` says how fast it may go now
// (bytes/s); `onProgress(received, total)`. Resumes from what the hub holds
// after any failure, until `deadline` (ms).
export async function uploadStill(blob, ticket, { rateBps, onProgress, deadline = 10 * 60_000 }) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const total = bytes.length;
  const hash = await sha256Hex(bytes);
  const base = `/images/uploads/${encodeURIComponent(ticket)}`;
  const stop = performance.now() + deadline;
  let offset = 0;
  while (performance.now() < stop) {
    const start = offset;
    const end = Math.min(offset + PIECE, total);
    const started = performance.now();
    let reply;
    try {
      const r = await fetch(`${base}?offset=${offset}&total=${total}&sha256=${hash}`, {
        method: 'PUT', body: bytes.subarray(offset, end), cache: 'no-store',
      });
      reply = { status: r.status, body: await r.json().catch(() => ({})) };
    } catch (_) {
      offset = await resumePoint(base, stop);
      continue;
    }
    if (reply.status === 200 && reply.body.image) return { image: reply.body.image, sha256: hash, total };
    if (reply.status === 200) offset = reply.body.received;
    else if (reply.status === 409 || (reply.status === 422 && reply.body.received === 0)) offset = reply.body.received;
    else if (reply.status === 503) await sleep(1000);
    else throw new Error(reply.body.error || `the hub answered ${reply.status}`);
    onProgress?.(offset, total);
    // Paced: each piece takes at least its share of the allowed rate.
    const owed = ((end - start) / Math.max(rateBps(), 4000)) * 1000;
    const spent = performance.now() - started;
    if (owed > spent) await sleep(owed - spent);
  }
  throw new Error('the photo could not be sent in time');
}

async function resumePoint(base, stop) {
  for (let wait = 500; performance.now() < stop; wait = Math.min(wait * 2, 4000)) {
    await sleep(wait);
    try {
      const r = await fetch(base, { cache: 'no-store' });
      if (r.ok) return (await r.json()).received;
      if (r.status === 404) throw new Error('the upload ran out of time; ask again');
    } catch (e) {
      if (String(e.message).includes('ask again')) throw e;
    }
  }
  throw new Error('the photo could not be sent in time');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The photo panel: the home's "sending" view and the asker's progress and
// full-size view with zoom. `metrics` gets what the tests read.
export class PhotoPanel {
  constructor(metrics, announce) {
    this.metrics = metrics;
    this.announce = announce;
    this.el = (id) => document.getElementById(id);
    this.lastAsked = null;
    this.el('photo-close').onclick = () => this.close();
    this.el('photo-zoom').onclick = () => {
      const frame = this.el('photo-frame');
      const zoomed = frame.classList.toggle('zoomed');
      this.el('photo-zoom').setAttribute('aria-pressed', String(zoomed));
      this.el('photo-zoom').textContent = zoomed ? 'Fit to screen' : 'Zoom in';
    };
  }

  close() {
    this.el('photo-panel').hidden = true;
    const img = this.el('photo-image');
    if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
    img.removeAttribute('src');
  }

  show(title, { progress = null, image = null, alt = '', zoom = false, another = null } = {}) {
    this.el('photo-title').textContent = title;
    const bar = this.el('photo-progress');
    bar.hidden = progress === null;
    if (progress !== null) bar.value = progress;
    const img = this.el('photo-image');
    this.el('photo-frame').hidden = !image;
    if (image && img.src !== image) img.src = image;
    img.alt = alt;
    this.el('photo-zoom').hidden = !zoom;
    const again = this.el('photo-another');
    again.hidden = !another;
    again.onclick = another;
    this.el('photo-panel').hidden = false;
  }

  // The home: hub staff asked for a photo. Captures, shows it, sends it.
  async take(asked, call, stream) {
    const track = stream && stream.getVideoTracks()[0];
    if (!track) {
      this.show(`${asked.name} asked for a photo, but the camera is off.`);
      return;
    }
    this.show(`Taking a photo for ${asked.name}…`);
    const started = performance.now();
    try {
      const blob = await takeStill(track);
      const preview = URL.createObjectURL(blob);
      this.show(`Sending this photo to ${asked.name}…`, { progress: 0, image: preview, alt: 'The photo being sent' });
      this.announce(`Sending a photo to ${asked.name}.`);
      let rate = 0;
      const estimate = setInterval(async () => { rate = await call.uplinkEstimate(); }, 1000);
      rate = await call.uplinkEstimate();
      try {
        const sent = await uploadStill(blob, asked.upload, {
          // Half of what the uplink carries, so the call's sound keeps its room.
          rateBps: () => (rate > 0 ? rate / 16 : 8000),
          onProgress: (received, total) => { this.el('photo-progress').value = received / total; },
        });
        this.metrics.photoSent = { ...sent, ms: performance.now() - started };
        this.show(`Photo sent to ${asked.name}.`, { image: preview, alt: 'The photo that was sent' });
        this.announce(`Photo sent to ${asked.name}.`);
      } finally {
        clearInterval(estimate);
      }
    } catch (e) {
      this.metrics.photoErrors = [...(this.metrics.photoErrors || []), String(e.message || e)];
      this.show(`The photo could not be sent: ${e.message || e}`);
    }
  }

  // Hub staff: how much of the photo they asked for has arrived.
  progress(msg, name) {
    this.show(`Receiving a photo from ${name}…`, { progress: msg.received / msg.total });
  }

  // Hub staff: the photo arrived. `again` asks for another.
  arrived(msg, name, again) {
    this.metrics.photoReceived = msg;
    const title = `Photo from ${name}: ${msg.width} × ${msg.height}`;
    this.show(title, { image: msg.url, alt: `Photo from ${name}`, zoom: true, another: again });
    this.announce(`A photo from ${name} arrived.`);
  }
}
