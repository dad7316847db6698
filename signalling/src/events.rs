//! Facts about calls that other parts of carecall record (call history now;
//! metrics and record hooks later). Signalling emits them; it does not store them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use carecall_sfu::recording::RecordingSummary;

use crate::token::Role;

/// Something that happened in a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallEvent {
    /// A participant passed the token check and entered a room.
    Joined {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// Role from the link.
        role: Role,
        /// When.
        at: SystemTime,
    },
    /// A joined participant's session can be resumed, after a restart too,
    /// with the token whose SHA-256 is `resume_hash` (kept until it leaves).
    Resumable {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// Hex SHA-256 of the resume token: the token itself is never stored.
        resume_hash: String,
        /// The link's claims, checked again on resume.
        claims: crate::JoinClaims,
    },
    /// A participant came back after the hub restarted: the same session
    /// in the call history, one more reconnect.
    Resumed {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// When.
        at: SystemTime,
    },
    /// The hub is stopping to restart: every joined session is left for the
    /// next process (written after every event before it).
    Stopping {
        /// When.
        at: SystemTime,
        /// Recordings the stop cut short: (room, the clinician who started
        /// it), who starts the next part once back.
        recording: Vec<(String, String)>,
    },
    /// A participant left or was disconnected.
    Left {
        /// Room name.
        room: String,
        /// Participant id (`p<n>`).
        participant: String,
        /// When.
        at: SystemTime,
    },
    /// A clinician started recording the room.
    RecordingStarted {
        /// Room name.
        room: String,
        /// The recording's id.
        recording: String,
        /// Who started it (`p<n>`).
        by: String,
        /// The file being written.
        path: PathBuf,
        /// Sealed with the hub's recording key.
        encrypted: bool,
        /// When.
        at: SystemTime,
    },
    /// A clinician recorded consent to record the call, or a refusal.
    Consent {
        /// Room name.
        room: String,
        /// The entry.
        consent: crate::Consent,
        /// When.
        at: SystemTime,
    },
    /// A clinical image asked for in the call arrived and is stored.
    ImageStored {
        /// Room name.
        room: String,
        /// The image's id.
        image: String,
        /// Who took it (`p<n>`).
        from: String,
        /// Who asked for it (`p<n>`).
        asked_by: String,
        /// `image/jpeg` or `image/png`.
        mime: &'static str,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes of the image.
        size: u64,
        /// SHA-256 of the image, hex.
        sha256: String,
        /// The file.
        path: PathBuf,
        /// Sealed with the hub's recording key.
        encrypted: bool,
        /// From its first piece to its last, ms.
        upload_ms: u64,
        /// When it was asked for.
        asked_at: SystemTime,
        /// When it was stored.
        at: SystemTime,
    },
    /// A recording's file is finished (stopped, or the call ended), or failed.
    RecordingFinished {
        /// Room name.
        room: String,
        /// The recording's id.
        recording: String,
        /// The file's figures, or why it failed.
        result: Result<RecordingSummary, String>,
        /// Stopped by a restart: its clinician's next part follows.
        cut_by_restart: bool,
        /// When.
        at: SystemTime,
    },
}

/// Counts call events sent and written. The call log is written on its
/// own thread behind a queue, so a reader that must see what signalling
/// has already told a browser (a clinician attaching a resident the moment
/// the call is joined) waits here until the writer has caught up.
#[derive(Debug, Clone, Default)]
pub struct EventTally {
    sent: Arc<AtomicU64>,
    written: Arc<watch::Sender<u64>>,
}

impl EventTally {
    /// One more event queued for the writer.
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::AcqRel);
    }

    /// The writer is done with one more event (written or given up on).
    pub fn written(&self) {
        self.written.send_modify(|n| *n += 1);
    }

    /// Waits (at most `within`) until every event sent before this call is
    /// written; false if the writer did not catch up in time.
    pub async fn caught_up(&self, within: Duration) -> bool {
        let target = self.sent.load(Ordering::Acquire);
        let mut written = self.written.subscribe();
        tokio::time::timeout(within, written.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_waits_for_the_events_sent_before_it_and_no_others() {
        let tally = EventTally::default();
        assert!(tally.caught_up(Duration::ZERO).await, "nothing sent yet");
        tally.sent();
        tally.sent();
        assert!(!tally.caught_up(Duration::from_millis(20)).await);
        let writer = tally.clone();
        let waiting = tokio::spawn({
            let tally = tally.clone();
            async move { tally.caught_up(Duration::from_secs(5)).await }
        });
        writer.written();
        tokio::task::yield_now().await;
        tally.sent(); // after the reader began: not waited for
        writer.written();
        assert!(waiting.await.unwrap());
        assert!(!tally.caught_up(Duration::from_millis(20)).await);
        writer.written();
        assert!(tally.caught_up(Duration::ZERO).await);
    }
}
