//! Consent to record a call. A clinician records who agreed (or refused) and
//! how before a recording may start; the hub keeps the entry for as long as
//! someone is in the room, tells every browser in it, and the call log keeps
//! it with the consultation (`recording.started` carries it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use carecall_sfu::{ParticipantId, RoomId};

use crate::events::CallEvent;
use crate::protocol::ServerMessage;
use crate::token::{unix_now, JoinClaims, Role};
use crate::AppState;

/// Who gave (or refused) consent for the resident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentGiver {
    /// The resident, who has capacity to decide.
    Resident,
    /// Someone holding a lasting power of attorney for health and welfare.
    LastingPowerOfAttorney,
    /// A best-interests decision for a resident without capacity.
    BestInterests,
}

/// How consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentManner {
    /// Said on the call.
    Verbal,
    /// A signed form, shown on the call.
    Written,
}

/// One consent entry: agreed or refused, by whom, how, recorded by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Agreed to recording; `false` records a refusal.
    pub given: bool,
    /// Who decided.
    pub by: ConsentGiver,
    /// How.
    pub how: ConsentManner,
    /// The clinician who recorded it (`p<n>`).
    pub recorded_by: String,
    /// When, Unix seconds.
    pub at: u64,
}

/// The consent entry of each room with anyone in it.
#[derive(Default)]
pub(crate) struct ConsentBook {
    rooms: Mutex<HashMap<String, Consent>>,
}

impl ConsentBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Consent>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why `room` may not be recorded now, in words for the clinician;
    /// `None` when consent was given.
    pub(crate) fn refusal(&self, room: &str) -> Option<&'static str> {
        match self.lock().get(room) {
            Some(c) if c.given => None,
            Some(_) => {
                Some("Consent to record was refused for this call, so it cannot be recorded.")
            }
            None => Some("Record the resident's consent first: who agreed and how."),
        }
    }

    /// The message that tells a browser the consent state of `room`.
    pub(crate) fn status(&self, room: &str) -> ServerMessage {
        ServerMessage::Consent {
            consent: self.lock().get(room).cloned(),
        }
    }

    /// Keeps `room`'s entry as it was noted elsewhere: before a restart, or
    /// on another node of a call spanning nodes.
    pub(crate) fn restore(&self, room: String, consent: Consent) {
        self.lock().insert(room, consent);
    }

    /// Keeps an entry a clinician noted on another node of the call, when
    /// it is newer than the one here (by time, then by who noted it, as
    /// the media rooms order them); true when kept.
    pub(crate) fn adopt(&self, room: &str, consent: Consent) -> bool {
        let mut rooms = self.lock();
        let newer = rooms.get(room).is_none_or(|c| {
            let key = |c: &Consent| (c.at, c.recorded_by.parse::<ParticipantId>().ok());
            key(c) < key(&consent)
        });
        if newer {
            rooms.insert(room.to_owned(), consent);
        }
        newer
    }

    /// Forgets `room`'s entry: its last participant left, the consultation
    /// is over, and the next one asks again.
    pub(crate) fn forget(&self, room: &str) {
        self.lock().remove(room);
    }
}

/// A clinician records consent (`given`) or a refusal for the call in
/// `claims.room`: kept, told to everyone in the room, and logged.
pub(crate) fn record(
    state: &AppState,
    claims: &JoinClaims,
    who: carecall_sfu::ParticipantId,
    given: bool,
    by: ConsentGiver,
    how: ConsentManner,
    outbox: &tokio::sync::mpsc::UnboundedSender<ServerMessage>,
) {
    if claims.role != Role::Clinician {
        return crate::recording::refuse(
            outbox,
            "not-allowed",
            "Only a clinician can record consent to record.",
        );
    }
    let room = &claims.room;
    let consent = Consent {
        given,
        by,
        how,
        recorded_by: who.to_string(),
        at: unix_now(),
    };
    tracing::info!(given, by = ?by, how = ?how, "consent to record noted");
    state
        .inner
        .consents
        .lock()
        .insert(room.clone(), consent.clone());
    state
        .inner
        .presence
        .broadcast(room, &state.inner.consents.status(room));
    // Everyone in the call sees it, wherever they joined, and a clinician
    // on another node of it may then record.
    let told = serde_json::to_string(&consent).map_err(|e| e.to_string());
    let told = told.and_then(|info| {
        (state.inner.media)
            .announce_consent(RoomId(room.clone()), who, consent.at, info)
            .map_err(|e| e.to_string())
    });
    if let Err(e) = told {
        tracing::warn!(error = %e, "the other nodes could not be told of the consent");
    }
    state.emit(CallEvent::Consent {
        room: room.clone(),
        consent,
        at: SystemTime::now(),
    });
}
