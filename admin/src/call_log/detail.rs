//! One past call opened up: each participant's session with its link over
//! time, for the helpdesk ("what happened in this morning's call?").

use crate::sql::values;
use serde::Serialize;

use super::{CallLog, CallRecord};
use crate::quality::Badge;
use crate::AdminError;

/// A call and everyone's sessions in it.
#[derive(Debug, Clone, PartialEq)]
pub struct CallDetail {
    /// The call as the history lists it.
    pub call: CallRecord,
    /// Sessions in join order.
    pub sessions: Vec<SessionDetail>,
}

/// One participant's session and its samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionDetail {
    /// Participant id.
    pub participant: String,
    /// Role from the link.
    pub role: String,
    /// Join and leave, ms since the epoch.
    pub joined_at_ms: i64,
    /// See `joined_at_ms`; `None` while present.
    pub left_at_ms: Option<i64>,
    /// Worst badge seen; `None` if its media was never sampled.
    pub worst_badge: Option<Badge>,
    /// Reconnects in this session.
    pub reconnects: u32,
    /// The transport its media last used.
    pub transport: Option<String>,
    /// Its link over time, oldest first.
    pub samples: Vec<StoredSample>,
}

/// A quality sample as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSample {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The badge then.
    pub badge: Badge,
    /// Kbit/s from and to its browser.
    pub receive_kbps: u64,
    /// See `receive_kbps`.
    pub send_kbps: u64,
    /// Loss on its upload (0 to 1).
    pub receive_loss: f64,
    /// Round trip, if measured.
    pub rtt_ms: Option<u64>,
    /// The smallest video it received then: a change is a layer switch.
    pub lowest_video_height: Option<u32>,
    /// "udp" or "tcp".
    pub transport: Option<String>,
}

impl CallLog {
    /// The call numbered `id` with its sessions and samples; `None` if there
    /// is no such call.
    pub fn call_detail(&self, id: i64) -> Result<Option<CallDetail>, AdminError> {
        let Some(call) = self.calls_where(Some(id))?.pop() else {
            return Ok(None);
        };
        let sessions = self.read(|c| {
            c.query_map(
                "SELECT id, participant, role, joined_at_ms, left_at_ms, worst_badge, reconnects, transport
                 FROM participant_sessions WHERE call_id = ?1 ORDER BY id",
                values![id],
                |r| {
                Ok((
                    r.get::<i64>(0)?,
                    SessionDetail {
                        participant: r.get(1)?,
                        role: r.get(2)?,
                        joined_at_ms: r.get(3)?,
                        left_at_ms: r.get(4)?,
                        worst_badge: r.get::<Option<i64>>(5)?.map(Badge::from_level),
                        reconnects: r.get(6)?,
                        transport: r.get(7)?,
                        samples: Vec::new(),
                    },
                ))
            })
        })?;
        let mut out = Vec::with_capacity(sessions.len());
        for (session_id, mut session) in sessions {
            session.samples = self.samples_of(session_id)?;
            out.push(session);
        }
        Ok(Some(CallDetail {
            call,
            sessions: out,
        }))
    }

    fn samples_of(&self, session_id: i64) -> Result<Vec<StoredSample>, AdminError> {
        self.read(|c| {
            c.query_map(
                "SELECT at_ms, badge, receive_kbps, send_kbps, receive_loss, rtt_ms,
                        lowest_video_height, transport
                 FROM quality_samples WHERE session_id = ?1 ORDER BY at_ms",
                values![session_id],
                |r| {
                    Ok(StoredSample {
                        at_ms: r.get(0)?,
                        badge: Badge::from_level(r.get(1)?),
                        receive_kbps: r.get(2)?,
                        send_kbps: r.get(3)?,
                        receive_loss: r.get(4)?,
                        rtt_ms: r.get(5)?,
                        lowest_video_height: r.get(6)?,
                        transport: r.get(7)?,
                    })
                },
            )
        })
    }
}
