//! Recording a call, from the signalling side: who may start and stop it
//! (a clinician, checked here, whatever the page shows), telling everyone in
//! the room the moment it starts or stops, and reporting the finished file.
//! The file itself is the SFU's work ([`carecall_sfu::recording`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use carecall_sfu::recording::{RecordingKey, RecordingOptions};
use carecall_sfu::{ParticipantId, RoomId};
use ring::rand::{SecureRandom, SystemRandom};

use crate::events::CallEvent;
use crate::protocol::ServerMessage;
use crate::token::{unix_now, Role};
use crate::AppState;

/// Where recordings are written and how they are sealed, from config.
#[derive(Clone, Debug)]
pub struct RecordingPolicy {
    /// The recordings directory.
    pub dir: PathBuf,
    /// Seals each file with AES-256-GCM; `None` writes plain WebM.
    pub key: Option<RecordingKey>,
}

/// Which rooms are being recorded.
#[derive(Default)]
pub(crate) struct RecordingBook {
    rooms: Mutex<HashMap<String, Active>>,
}

#[derive(Clone)]
struct Active {
    id: String,
    by: String,
    /// `by` as the media rooms know it: told to the other nodes a
    /// spanning call reaches.
    by_id: ParticipantId,
    since: u64,
    /// False until the SFU has started it.
    running: bool,
    /// Stopped by a restart: a new part starts when its clinician is back.
    cut: bool,
}

impl RecordingBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Active>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops every running recording for a restart; returns (room, who
    /// started it) of each. Each file is sealed as usual and reported cut.
    pub(crate) fn cut_all(&self, media: &carecall_sfu::MediaServer) -> Vec<(String, String)> {
        let mut rooms = self.lock();
        let mut cut = Vec::new();
        for (room, a) in rooms.iter_mut().filter(|(_, a)| a.running) {
            a.cut = true;
            if let Err(e) = media.stop_recording(RoomId(room.clone())) {
                tracing::error!(error = %e, %room, "stopping the recording for the restart failed");
            }
            cut.push((room.clone(), a.by.clone()));
        }
        cut
    }

    /// Whether any recording is running or finishing.
    pub(crate) fn any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// The message that tells a browser whether `room` is being recorded.
    pub(crate) fn status(&self, room: &str) -> Option<ServerMessage> {
        self.lock()
            .get(room)
            .filter(|a| a.running)
            .map(|a| status(a, true))
    }
}

fn status(a: &Active, active: bool) -> ServerMessage {
    ServerMessage::Recording {
        active,
        by: a.by.clone(),
        since: a.since,
    }
}

/// Tells the browser its request was refused, and why; not fatal.
pub(crate) fn refuse(
    outbox: &tokio::sync::mpsc::UnboundedSender<ServerMessage>,
    code: &str,
    message: &str,
) {
    let _ = outbox.send(ServerMessage::Error {
        code: code.into(),
        message: message.into(),
    });
}

/// A participant asked to start (`on`) or stop recording `room`.
pub(crate) fn request(
    state: &AppState,
    room: &str,
    who: ParticipantId,
    role: Role,
    on: bool,
    outbox: &tokio::sync::mpsc::UnboundedSender<ServerMessage>,
) {
    if role != Role::Clinician {
        tracing::info!(%role, "recording request refused: not a clinician");
        return refuse(
            outbox,
            "not-allowed",
            "Only a clinician can start or stop a recording.",
        );
    }
    let Some(policy) = state.inner.recording.clone() else {
        return refuse(
            outbox,
            "recording-disabled",
            "Recording is switched off on this hub.",
        );
    };
    let book = &state.inner.recordings;
    if on {
        if let Some(why) = state.inner.consents.refusal(room) {
            tracing::info!("recording request refused: no consent");
            return refuse(outbox, "consent-needed", why);
        }
    }
    if !on {
        let Some(active) = book.lock().remove(room) else {
            return;
        };
        if let Err(e) = state.inner.media.stop_recording(RoomId(room.to_owned())) {
            tracing::error!(error = %e, "stopping the recording failed");
        }
        tracing::info!(recording = %active.id, "recording stopped");
        state
            .inner
            .presence
            .broadcast(room, &status(&active, false));
        tell_other_nodes(state, room, &active, false);
        return;
    }
    let active = {
        let mut rooms = book.lock();
        if rooms.contains_key(room) {
            return; // already recording (or starting): nothing to do
        }
        let Some(id) = new_recording_id() else {
            return refuse(outbox, "recording-failed", "The recording could not start.");
        };
        let active = Active {
            id,
            by: who.to_string(),
            by_id: who,
            since: unix_now(),
            running: false,
            cut: false,
        };
        rooms.insert(room.to_owned(), active.clone());
        active
    };
    let encrypted = policy.key.is_some();
    let file = format!(
        "{}.{}",
        active.id,
        if encrypted { "webm.sealed" } else { "webm" }
    );
    let options = RecordingOptions {
        path: policy.dir.join(file),
        key: policy.key.clone(),
    };
    let state = state.clone();
    let room = room.to_owned();
    let outbox = outbox.clone();
    tokio::spawn(async move {
        if let Err(e) = std::fs::create_dir_all(&policy.dir) {
            tracing::error!(dir = %policy.dir.display(), error = %e, "recordings directory unusable");
        }
        let path = options.path.clone();
        let started = state
            .inner
            .media
            .start_recording(RoomId(room.clone()), options)
            .await;
        let done = match started {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "recording could not start");
                state.inner.recordings.lock().remove(&room);
                return refuse(
                    &outbox,
                    "recording-failed",
                    "The recording could not start.",
                );
            }
        };
        // A stop while it started took it out of the book: nobody may be
        // told it runs, and if its stop reached the media room first, it
        // stops now. (A newer recording of the room is left alone.)
        let booked = match state.inner.recordings.lock().get_mut(&room) {
            Some(a) if a.id == active.id => {
                a.running = true;
                Some(true)
            }
            Some(_) => Some(false),
            None => None,
        };
        tracing::info!(recording = %active.id, path = %path.display(), "recording started");
        match booked {
            Some(true) => {
                state
                    .inner
                    .presence
                    .broadcast(&room, &status(&active, true));
                tell_other_nodes(&state, &room, &active, true);
            }
            Some(false) => tracing::info!(recording = %active.id, "stopped while it started"),
            None => {
                tracing::info!(recording = %active.id, "stopped while it started: stopping it now");
                if let Err(e) = state.inner.media.stop_recording(RoomId(room.clone())) {
                    tracing::error!(error = %e, "stopping the recording failed");
                }
            }
        }
        state.emit(CallEvent::RecordingStarted {
            room: room.clone(),
            recording: active.id.clone(),
            by: active.by.clone(),
            path,
            encrypted,
            at: SystemTime::now(),
        });
        let result = done
            .await
            .unwrap_or(Err(carecall_sfu::recording::RecordingError::Stopped));
        let cut = state
            .inner
            .recordings
            .lock()
            .get(&room)
            .is_some_and(|a| a.id == active.id && a.cut);
        // Reported before it leaves the book: a stopping hub waits for the
        // book to empty, then for the report to be written.
        state.emit(CallEvent::RecordingFinished {
            room: room.clone(),
            recording: active.id.clone(),
            result: result.map_err(|e| e.to_string()),
            cut_by_restart: cut,
            at: SystemTime::now(),
        });
        // Ended by the room emptying rather than by a stop: clear it here.
        let mut rooms = state.inner.recordings.lock();
        if rooms.get(&room).is_some_and(|a| a.id == active.id) {
            rooms.remove(&room);
            drop(rooms);
            if !cut {
                state
                    .inner
                    .presence
                    .broadcast(&room, &status(&active, false));
                tell_other_nodes(&state, &room, &active, false);
            }
        }
    });
}

/// Tells the other nodes a spanning call reaches that it is recorded here
/// (or no longer): the recording takes their participants' media too, so
/// their browsers must say so as this node's do.
fn tell_other_nodes(state: &AppState, room: &str, a: &Active, running: bool) {
    let since = running.then_some(a.since);
    let room = RoomId(room.to_owned());
    if let Err(e) = state.inner.media.announce_recording(room, a.by_id, since) {
        tracing::warn!(error = %e, "the other nodes could not be told of the recording");
    }
}

/// What a browser is told of its call's recording: this node's, while one
/// runs; else one on another node of a spanning call (`far`: who started
/// each and when), while one runs there; else that it stopped (`by` who
/// stopped last).
pub(crate) fn merged_status(
    book: &RecordingBook,
    room: &str,
    far: &[(ParticipantId, u64)],
    by: ParticipantId,
) -> ServerMessage {
    let stopped = || ServerMessage::Recording {
        active: false,
        by: by.to_string(),
        since: 0,
    };
    (book.status(room))
        .or_else(|| far_status(far))
        .unwrap_or_else(stopped)
}

/// A message on its way to a browser whose call is also recorded on other
/// nodes (`far`): this node's recording stopping is not the end of all
/// recording, so the browser is told the far one runs.
pub(crate) fn as_told(msg: ServerMessage, far: &[(ParticipantId, u64)]) -> ServerMessage {
    match msg {
        ServerMessage::Recording { active: false, .. } if !far.is_empty() => {
            far_status(far).unwrap_or(msg)
        }
        msg => msg,
    }
}

/// The message that tells a browser a recording on another node runs (the
/// first of `far`), if one does.
pub(crate) fn far_status(far: &[(ParticipantId, u64)]) -> Option<ServerMessage> {
    far.first().map(|(by, since)| ServerMessage::Recording {
        active: true,
        by: by.to_string(),
        since: *since,
    })
}

/// 128 random bits, hex: a recording's id and file name.
fn new_recording_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(carecall_sfu::recording::hex(&bytes))
}
