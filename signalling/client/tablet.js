// What a tablet does to a call, and how the page comes back from each without
// a rejoin: it gives its camera to another app or to a locked screen, refuses
// sound no one tapped for, dims its screen, and has a rear camera too.

// What the page asks of a camera: HD, and the frame rate the camera can give.
export const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

// A camera muted this long (ms) while the page is visible is taken to be lost
// (another app has it): it is opened again.
const MUTED_FOR_MS = 1000;
// While the camera cannot be opened (still in use elsewhere), try again this
// often (ms).
const RETRY_MS = 2000;

// Keeps the call's camera going. A camera that ends (unplugged, taken by
// another app, stopped by the system) or stays muted is opened again and put
// in place of the old one with `replaceTrack`: no renegotiation, the simulcast
// layers stay as they were, and the others see the picture again as soon as
// the new camera's first keyframe reaches them.
//
// Events: 'camera' with detail { state: 'lost' | 'back' | 'switched', error }.
export class CameraKeeper extends EventTarget {
  // `call`: the Call whose camera this is (it does the `replaceTrack`).
  constructor(call, metrics) {
    super();
    this.call = call;
    this.metrics = metrics;
    this.busy = false;
    this.stopped = false;
    this.retryTimer = null;
    this.mutedTimer = null;
    const track = call.localStream.getVideoTracks()[0];
    if (track) this.watch(track);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.check('page visible again');
    });
  }

  emit(state, error) { this.dispatchEvent(new CustomEvent('camera', { detail: { state, error } })); }

  track() { return this.call.localStream.getVideoTracks()[0] || null; }

  watch(track) {
    track.addEventListener('ended', () => {
      if (track === this.track()) this.reopen('camera ended');
    });
    track.addEventListener('mute', () => {
      clearTimeout(this.mutedTimer);
      this.mutedTimer = setTimeout(() => {
        if (track === this.track() && track.muted && document.visibilityState === 'visible') this.reopen('camera muted');
      }, MUTED_FOR_MS);
    });
    track.addEventListener('unmute', () => clearTimeout(this.mutedTimer));
  }

  // After the page comes back: a camera lost while hidden is reopened now.
  check(why) {
    const track = this.track();
    if (track && (track.readyState === 'ended' || track.muted)) this.reopen(why);
  }

  // Opens the same camera again (or any camera, if that one is gone).
  async reopen(why) {
    const old = this.track();
    const device = old && old.getSettings().deviceId;
    await this.open(why, device ? { ...CAMERA, deviceId: { ideal: device } } : CAMERA, 'back');
  }

  // The cameras this tablet has (needs the permission the call already has).
  async cameras() {
    const all = await navigator.mediaDevices.enumerateDevices();
    return all.filter((d) => d.kind === 'videoinput');
  }

  // Turns to the other camera: by facing where the camera says which way it
  // faces (tablets: labels are localised and some list several rear
  // cameras), else the next in the list.
  async switchCamera() {
    const old = this.track();
    const facing = old && old.getSettings().facingMode;
    if (facing === 'user' || facing === 'environment') {
      old.stop();
      const other = facing === 'user' ? 'environment' : 'user';
      await this.open('switch camera', { ...CAMERA, facingMode: { exact: other } }, 'switched');
      return;
    }
    const cameras = await this.cameras();
    const current = old && old.getSettings().deviceId;
    const at = cameras.findIndex((c) => c.deviceId === current);
    const next = cameras[(at + 1) % cameras.length];
    if (!next || next.deviceId === current) return;
    // Many tablets cannot open both cameras at once: let go of this one first.
    if (old) old.stop();
    await this.open('switch camera', { ...CAMERA, deviceId: { exact: next.deviceId } }, 'switched');
  }

  async open(why, video, state) {
    if (this.busy || this.stopped) return;
    this.busy = true;
    clearTimeout(this.retryTimer);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video });
      const track = stream.getVideoTracks()[0];
      if (this.stopped) { track.stop(); return; }
      await this.call.replaceCamera(track);
      this.watch(track);
      this.metrics.cameraRestarts = (this.metrics.cameraRestarts || 0) + 1;
      this.call.note(`camera-${state}: ${why}`);
      this.emit(state);
    } catch (err) {
      console.warn('could not open the camera', why, err);
      this.call.note(`camera-lost: ${err && err.name}`);
      this.emit('lost', err);
      // Still held by another app, say: try again while the call lasts.
      this.retryTimer = setTimeout(() => this.reopen('retry'), RETRY_MS);
    } finally {
      this.busy = false;
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.mutedTimer);
  }
}

// Keeps the screen on during a call where the Screen Wake Lock API exists.
// The browser releases the lock whenever the page is hidden; it is asked for
// again when the page is visible. `metrics.wakeLock` says how it stands.
export class ScreenAwake {
  constructor(metrics) {
    this.metrics = metrics;
    this.lock = null;
    this.wanted = false;
    document.addEventListener('visibilitychange', () => {
      if (this.wanted && document.visibilityState === 'visible') this.acquire();
    });
  }

  async start() {
    this.wanted = true;
    await this.acquire();
  }

  async acquire() {
    if (!('wakeLock' in navigator)) {
      this.metrics.wakeLock = 'unsupported';
      return;
    }
    if (this.lock && !this.lock.released) return;
    try {
      this.lock = await navigator.wakeLock.request('screen');
      this.metrics.wakeLock = 'held';
      this.lock.addEventListener('release', () => {
        this.metrics.wakeLock = 'released';
      });
    } catch (err) {
      this.metrics.wakeLock = `refused: ${err.name}`;
    }
  }

  stop() {
    this.wanted = false;
    if (this.lock) this.lock.release().catch(() => {});
    this.lock = null;
  }
}

// Plays a remote participant's video with sound. A browser that refuses sound
// before anyone has touched the page (autoplay policy: a tablet opened on a
// link from the hub, straight into the call) gets the picture muted meanwhile,
// and `onBlocked` is called once, to show a "Tap to hear" button; its tap calls
// `unblock`.
export class Speaker {
  constructor(metrics, onBlocked) {
    this.metrics = metrics;
    this.onBlocked = onBlocked;
    this.blocked = new Set();
  }

  play(video) {
    video.play().catch((err) => {
      if (err.name !== 'NotAllowedError') return; // a newer load interrupted it
      video.muted = true;
      video.play().catch(() => {});
      const first = this.blocked.size === 0;
      this.blocked.add(video);
      this.metrics.soundBlocked = true;
      if (first) this.onBlocked();
    });
  }

  // Called from a tap: the gesture lets every video play with sound.
  unblock() {
    for (const video of this.blocked) {
      video.muted = false;
      video.play().catch((err) => console.warn('still no sound', err));
    }
    this.blocked.clear();
    this.metrics.soundBlocked = false;
  }
}
