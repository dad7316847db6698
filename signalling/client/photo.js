// Clinical still images on the page (docs/images.md): the home's tablet
// captures a full-resolution still when hub staff ask, and sends it in
// pieces that resume after a drop, paced to leave the call's audio room.

// One piece is in flight at a time, sized to what the link carried in
// about PIECE_SECONDS: the queue it adds in front of the call's sound stays
// that short whatever the link, and a drop costs at most one piece.
const PIECE_SECONDS = 0.2;
const SMALLEST_PIECE = 4 * 1024;
const LARGEST_PIECE = 64 * 1024;
// A piece that has not gone through in this long is taken as lost (a
// dropped Wi-Fi leaves a request hanging); the hub then says what it holds.
const PIECE_TIMEOUT_MS = 6000;
const STATUS_TIMEOUT_MS = 4000;

// A still from `track` at its camera's full resolution: ImageCapture's
// photo where the browser has it, else the largest frame of a clone.
export async function takeStill(track) {
  if ('ImageCapture' in window) {
    try {
      const photo = await withTimeout(new ImageCapture(track).takePhoto(), 4000);
      if (photo && photo.size > 0) return await asJpeg(photo);
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
    return await new Promise((r) => canvas.toBlob(r, 'image/jpeg', JPEG_QUALITY));
  } finally {
    clone.stop();
  }
}

// A photo as a JPEG at its own size: some cameras give a PNG (Chromium's
// is about 0.9 MB at 1280x720, 25 s at 300 kbit/s), which a JPEG at this
// quality carries in a fraction of the bytes with no detail a clinician
// would miss.
async function asJpeg(blob) {
  if (blob.type === 'image/jpeg' || !('createImageBitmap' in window)) return blob;
  const bitmap = await createImageBitmap(blob);
  try {
    const canvas = document.createElement('canvas');
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext('2d').drawImage(bitmap, 0, 0);
    const jpeg = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', JPEG_QUALITY));
    return jpeg && jpeg.size > 0 && jpeg.size < blob.size ? jpeg : blob;
  } finally {
    bitmap.close();
  }
}

const JPEG_QUALITY = 0.92;

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, no) => setTimeout(() => no(new Error('timeout')), ms))]);
}

async function sha256Hex(bytes) {
  const d = await crypto.subtle.digest('SHA-256', bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// Sends `blob` under `ticket`; `onProgress(received, total)`. Resumes from
// what the hub holds after any failure, until `deadline` (ms).
export async function uploadStill(blob, ticket, { onProgress, deadline = 10 * 60_000 }) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const total = bytes.length;
  const hash = await sha256Hex(bytes);
  const base = `/images/uploads/${encodeURIComponent(ticket)}`;
  const stop = performance.now() + deadline;
  // What went on the wire, and how often the upload picked up from what
  // the hub held: a drop costs a piece or two, never the whole photo.
  const sent = { bytesPut: 0, resumes: 0 };
  let offset = 0;
  let piece = SMALLEST_PIECE;
  while (performance.now() < stop) {
    const start = offset;
    const end = Math.min(offset + piece, total);
    const started = performance.now();
    let reply;
    try {
      sent.bytesPut += end - start;
      const r = await fetchWithin(`${base}?offset=${offset}&total=${total}&sha256=${hash}`, {
        method: 'PUT', body: bytes.subarray(offset, end), cache: 'no-store',
      }, PIECE_TIMEOUT_MS);
      reply = { status: r.status, body: await r.json().catch(() => ({})) };
    } catch (_) {
      offset = await resumePoint(base, stop);
      sent.resumes += 1;
      onProgress?.(offset, total);
      continue;
    }
    if (reply.status === 200 && reply.body.image) {
      return { image: reply.body.image, sha256: hash, total, ...sent };
    }
    if (reply.status === 200) offset = reply.body.received;
    else if (reply.status === 409 || (reply.status === 422 && reply.body.received === 0)) offset = reply.body.received;
    else if (reply.status === 503) await sleep(1000);
    else throw new Error(reply.body.error || `the hub answered ${reply.status}`);
    onProgress?.(offset, total);
    if (reply.status === 200) {
      const rate = ((end - start) * 1000) / Math.max(performance.now() - started, 1);
      piece = Math.round(Math.min(LARGEST_PIECE, Math.max(SMALLEST_PIECE, rate * PIECE_SECONDS)));
    }
  }
  throw new Error('the photo could not be sent in time');
}

async function resumePoint(base, stop) {
  for (let wait = 500; performance.now() < stop; wait = Math.min(wait * 2, 4000)) {
    await sleep(wait);
    try {
      const r = await fetchWithin(base, { cache: 'no-store' }, STATUS_TIMEOUT_MS);
      if (r.ok) return (await r.json()).received;
      if (r.status === 404) throw new Error('the upload ran out of time; ask again');
    } catch (e) {
      if (String(e.message).includes('ask again')) throw e;
    }
  }
  throw new Error('the photo could not be sent in time');
}

// `fetch`, given up after `ms` (with the body read: a reply that stalls
// half-way is as lost as one that never came).
async function fetchWithin(url, options, ms) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    const r = await fetch(url, { ...options, signal: abort.signal });
    const body = await r.text();
    return { status: r.status, ok: r.ok, json: async () => JSON.parse(body) };
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// While a photo goes up the camera keeps to its lowest layer at this rate
// (bits/s): the clinician is waiting for the photo, and the sound is left
// alone.
const VIDEO_WHILE_SENDING = 64_000;

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
      await call.capVideo(VIDEO_WHILE_SENDING);
      try {
        const sent = await uploadStill(blob, asked.upload, {
          onProgress: (received, total) => { this.el('photo-progress').value = received / total; },
        });
        this.metrics.photoSent = { ...sent, ms: performance.now() - started };
        this.show(`Photo sent to ${asked.name}.`, { image: preview, alt: 'The photo that was sent' });
        this.announce(`Photo sent to ${asked.name}.`);
      } finally {
        await call.capVideo(null);
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
