//! Recording a consultation: the room's RTP, tapped without a browser in the
//! loop, written to one WebM file per recording with each participant's
//! video and audio and a mixed track of the whole conversation; sealed with
//! AES-256-GCM at rest when the hub configured a key.
//!
//! The room only hands packets over ([`tap`]); a thread per recording does
//! the rest ([`recorder`]), so recording never slows forwarding.

mod ebml;
#[cfg(test)]
mod faults;
mod mix;
mod recorder;
mod sealed;
pub(crate) mod tap;
pub(crate) mod vp8;
mod webm;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

pub use recorder::TrackInfo;
pub use sealed::{export, seal_bytes, OpenError, RecordingKey, SEALED_MAGIC};

use mix::{AudioMixer, MixerError};
use recorder::Recorder;
use sealed::{PlainFile, SealedFile};
use tap::RecordingTap;
use webm::{RecordingSink, WebmWriter, HEADER_SPACE};

/// Packets the tap may get ahead of the recorder: about five seconds of a
/// three-person call.
const TAP_CAPACITY: usize = 4096;

/// Where and how one recording is written.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    /// The file to create; it must not exist.
    pub path: PathBuf,
    /// Seal the file with this key; `None` writes plain WebM.
    pub key: Option<RecordingKey>,
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSummary {
    /// The file.
    pub path: PathBuf,
    /// Its size on disk.
    pub bytes_on_disk: u64,
    /// Size of the WebM it holds (what an export writes).
    pub webm_bytes: u64,
    /// SHA-256 of that WebM, hex: what a downloader can check.
    pub sha256: String,
    /// Length of the recording.
    pub duration_ms: u64,
    /// The file's tracks, in order.
    pub tracks: Vec<TrackInfo>,
    /// Packets the recorder could not keep up with (0 on a healthy disk).
    pub packets_dropped: u64,
}

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file could not be created.
    #[error("cannot create recording {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing failed part-way (a full disk, say).
    #[error("writing recording {path} failed: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The audio mixer could not start.
    #[error(transparent)]
    Mixer(#[from] MixerError),
    /// The recorder stopped without a result (the server is shutting down).
    #[error("the recorder stopped before finishing")]
    Stopped,
    /// The finished file did not read back.
    #[error("recording {path} does not read back: {source}")]
    Verify {
        /// The file.
        path: PathBuf,
        /// Why.
        source: OpenError,
    },
}

/// What the caller keeps while a recording runs: it resolves when the
/// recording is stopped or its room ends.
pub type RecordingDone = oneshot::Receiver<Result<RecordingSummary, RecordingError>>;

/// Matroska counts dates from 2001-01-01.
const MATROSKA_EPOCH_UNIX_S: i64 = 978_307_200;

/// Starts the recorder thread; the tap goes into the room.
pub(crate) fn start(
    options: RecordingOptions,
) -> Result<(RecordingTap, RecordingDone), RecordingError> {
    let unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    let date_ns = unix_ns - MATROSKA_EPOCH_UNIX_S * 1_000_000_000;
    let mixer = AudioMixer::new()?;
    let create = |e| RecordingError::Create {
        path: options.path.clone(),
        source: e,
    };
    let (packets_in, packets_out) = sync_channel(TAP_CAPACITY);
    let (wishes_in, wishes_out) = channel();
    let dropped = Arc::new(AtomicU64::new(0));
    let tap = RecordingTap::new(packets_in, wishes_out, dropped.clone());
    let (done_in, done_out) = oneshot::channel();
    let parts = Parts {
        t0: Instant::now(),
        date_ns,
        mixer,
        wishes: wishes_in,
        packets: packets_out,
        dropped,
        done: done_in,
    };
    match &options.key {
        Some(key) => {
            let sink = SealedFile::create(&options.path, key, HEADER_SPACE).map_err(create)?;
            launch(sink, parts, options)?;
        }
        None => {
            let sink = PlainFile::create(&options.path).map_err(create)?;
            launch(sink, parts, options)?;
        }
    }
    Ok((tap, done_out))
}

/// What a recorder thread is started with, whatever its sink.
struct Parts {
    t0: Instant,
    date_ns: i64,
    mixer: AudioMixer,
    wishes: std::sync::mpsc::Sender<(crate::id::ParticipantId, str0m::media::Mid)>,
    packets: std::sync::mpsc::Receiver<tap::TapPacket>,
    dropped: Arc<AtomicU64>,
    done: oneshot::Sender<Result<RecordingSummary, RecordingError>>,
}

/// Starts the WebM file on `sink` and the recorder thread writing it.
fn launch<S: RecordingSink + Send + 'static>(
    sink: S,
    p: Parts,
    options: RecordingOptions,
) -> Result<(), RecordingError> {
    let writer = WebmWriter::new(sink, p.date_ns).map_err(|source| RecordingError::Create {
        path: options.path.clone(),
        source,
    })?;
    let recorder = Recorder::new(p.t0, writer, p.mixer, p.wishes);
    spawn(recorder, p.packets, options, p.dropped, p.done);
    Ok(())
}

fn spawn<S: RecordingSink + Send + 'static>(
    recorder: Recorder<S>,
    packets: std::sync::mpsc::Receiver<tap::TapPacket>,
    options: RecordingOptions,
    dropped: Arc<AtomicU64>,
    done: oneshot::Sender<Result<RecordingSummary, RecordingError>>,
) {
    let spawned = std::thread::Builder::new()
        .name("carecall-recorder".into())
        .spawn(move || {
            let path = options.path.clone();
            tracing::info!(path = %path.display(), "recording started");
            let result = recorder
                .run(packets)
                .map_err(|source| RecordingError::Write {
                    path: path.clone(),
                    source,
                })
                .and_then(|(duration_ms, tracks)| {
                    summarise(&options, duration_ms, tracks, dropped.load(Ordering::Relaxed))
                });
            match &result {
                Ok(s) => tracing::info!(path = %path.display(), duration_ms = s.duration_ms, bytes = s.bytes_on_disk, dropped = s.packets_dropped, "recording finished"),
                Err(e) => tracing::error!(path = %path.display(), error = %e, "recording failed"),
            }
            let _ = done.send(result);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "recorder thread could not start");
    }
}

/// Reads the finished file back (decrypting it if sealed) for its size and
/// SHA-256: the figures a downloader checks, and proof the file is whole.
fn summarise(
    options: &RecordingOptions,
    duration_ms: u64,
    tracks: Vec<TrackInfo>,
    packets_dropped: u64,
) -> Result<RecordingSummary, RecordingError> {
    let mut hasher = Sha256Writer(ring::digest::Context::new(&ring::digest::SHA256));
    let webm_bytes =
        export(&options.path, options.key.as_ref(), &mut hasher).map_err(|source| {
            RecordingError::Verify {
                path: options.path.clone(),
                source,
            }
        })?;
    let sha256 = hex(hasher.0.finish().as_ref());
    let bytes_on_disk = std::fs::metadata(&options.path)
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(RecordingSummary {
        path: options.path.clone(),
        bytes_on_disk,
        webm_bytes,
        sha256,
        duration_ms,
        tracks,
        packets_dropped,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Sha256Writer(ring::digest::Context);

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Exports a recording to a plain WebM file at `out` (which must not exist).
pub fn export_to_file(
    path: &Path,
    key: Option<&RecordingKey>,
    out: &Path,
) -> Result<u64, OpenError> {
    let file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(out)?;
    let mut writer = io::BufWriter::new(file);
    let n = export(path, key, &mut writer)?;
    writer.flush()?;
    Ok(n)
}
