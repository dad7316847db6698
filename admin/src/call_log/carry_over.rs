//! Sessions carried over a restart (see `carecall_signalling`'s `carried`
//! module): what a resume needs is kept while a participant is in a call,
//! marked when the hub stops, and taken back by the next process.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sql::values;
use carecall_signalling::{CarriedSession, JoinClaims};

use super::CallLog;
use crate::clock::ms;
use crate::AdminError;

impl CallLog {
    /// Keeps what a resume of `participant` in `room` needs, until it leaves.
    pub fn keep_resumable(
        &self,
        room: &str,
        participant: &str,
        resume_hash: &str,
        claims: &JoinClaims,
    ) -> Result<(), AdminError> {
        let claims = serde_json::to_string(claims).unwrap_or_default();
        self.read(|c| {
            c.execute(
                "INSERT INTO resumable_sessions (resume_hash, room, participant, claims_json, node)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (resume_hash) DO UPDATE SET room = excluded.room,
                     participant = excluded.participant, claims_json = excluded.claims_json,
                     parked_at_ms = NULL, recording = 0, node = excluded.node",
                values![resume_hash, room, participant, claims, self.node_id()],
            )
        })
        .map(drop)
    }

    /// Marks every kept session as left by a stop at `at`, for the next
    /// process; those in `recording` (room, participant) were recording and
    /// record again once back. Returns how many.
    pub fn park_resumable(
        &self,
        at: SystemTime,
        recording: &[(String, String)],
    ) -> Result<usize, AdminError> {
        let node = self.node_id();
        self.change(|c| {
            for (room, participant) in recording {
                c.execute(
                    "UPDATE resumable_sessions SET recording = 1
                     WHERE room = ?1 AND participant = ?2 AND (node = ?3 OR node IS NULL)",
                    values![room, participant, node],
                )?;
            }
            c.execute(
                "UPDATE resumable_sessions SET parked_at_ms = ?1
                 WHERE parked_at_ms IS NULL AND (node = ?2 OR node IS NULL)",
                values![ms(at), node],
            )
        })
    }

    /// Each open call's consent to record, for a restarted hub: (room,
    /// its last entry).
    pub fn consents_of_open_calls(
        &self,
    ) -> Result<Vec<(String, carecall_signalling::Consent)>, AdminError> {
        let rows: Vec<(String, bool, String, String, String, i64)> = self.read(|c| {
            c.query_map(
                "SELECT k.room, k.given, k.decided_by, k.manner, k.recorded_by, k.at_ms
                 FROM recording_consents k JOIN calls c ON c.id = k.call_id
                 WHERE c.ended_at_ms IS NULL
                 AND k.id = (SELECT MAX(id) FROM recording_consents WHERE call_id = k.call_id)",
                &[],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(room, given, by, how, recorded_by, at)| {
                let consent = carecall_signalling::Consent {
                    given,
                    by: serde_json::from_value(serde_json::Value::String(by)).ok()?,
                    how: serde_json::from_value(serde_json::Value::String(how)).ok()?,
                    recorded_by,
                    at: (at.max(0) / 1000) as u64,
                };
                Some((room, consent))
            })
            .collect())
    }

    /// On a database several nodes share: this node's sessions that its
    /// last run left without a stop (it was killed, or crashed) count as
    /// left at its last heartbeat, so that when it is back within
    /// [`take_carried`](CallLog::take_carried)'s limit their browsers
    /// resume, as another node's would have taken them over. Call before
    /// [`node_started`](CallLog::node_started), which renews the heartbeat.
    /// Returns how many.
    pub fn park_after_crash(&self) -> Result<usize, AdminError> {
        let node = self.node_id();
        self.write(|c| {
            if !c.shared() {
                return Ok(0);
            }
            c.execute(
                "UPDATE resumable_sessions
                 SET parked_at_ms = (SELECT heartbeat_at_ms FROM nodes WHERE id = ?1)
                 WHERE node = ?1 AND parked_at_ms IS NULL",
                values![node],
            )
        })
    }

    /// The sessions a stop at most `max_age` before `now` left for a
    /// resume. Every other kept session is dropped: its process crashed or
    /// stopped too long ago for its browser to be waiting. Those taken are
    /// kept, unmarked, until they leave.
    pub fn take_carried(
        &self,
        now: SystemTime,
        max_age: Duration,
    ) -> Result<Vec<CarriedSession>, AdminError> {
        let since = ms(now) - max_age.as_millis() as i64;
        let node = self.node_id();
        self.change(|c| {
            c.execute(
                "DELETE FROM resumable_sessions WHERE (node = ?2 OR node IS NULL)
                 AND (parked_at_ms IS NULL OR parked_at_ms < ?1)",
                values![since, node],
            )?;
            let rows: Vec<(String, String, String, i64, bool)> = c.query_map(
                "SELECT resume_hash, participant, claims_json, parked_at_ms, recording
                 FROM resumable_sessions WHERE node = ?1 OR node IS NULL",
                values![node],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            c.execute(
                "UPDATE resumable_sessions SET parked_at_ms = NULL, recording = 0, node = ?1
                 WHERE node = ?1 OR node IS NULL",
                values![node],
            )?;
            Ok(carried_sessions(rows))
        })
    }

    /// Records that `participant` came back after a restart: the same
    /// session, one more reconnect.
    pub fn resumed(&self, room: &str, participant: &str) -> Result<(), AdminError> {
        self.read(|c| {
            c.execute(
                "UPDATE participant_sessions SET reconnects = reconnects + 1
                 WHERE room = ?1 AND participant = ?2 AND left_at_ms IS NULL",
                values![room, participant],
            )
        })
        .map(drop)
    }
}

/// Sessions for a resume from their rows: (resume hash, participant,
/// claims as JSON, when they were left (ms), recording). A row that does
/// not parse is left out: its browser joins afresh.
pub(super) fn carried_sessions(
    rows: Vec<(String, String, String, i64, bool)>,
) -> Vec<CarriedSession> {
    rows.into_iter()
        .filter_map(|(resume_hash, participant, claims, parked, recording)| {
            Some(CarriedSession {
                resume_hash,
                participant: participant.parse().ok()?,
                claims: serde_json::from_str(&claims).ok()?,
                parked_at: UNIX_EPOCH + Duration::from_millis(parked.max(0) as u64),
                recording,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use carecall_signalling::Role;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn claims(name: &str) -> JoinClaims {
        JoinClaims {
            room: "ward-1".into(),
            role: Role::Home,
            name: name.into(),
            exp: 1_700_003_600,
            iat: 1_700_000_000,
        }
    }

    /// Three in a call, one leaves, the hub stops at t(10) while p8 records.
    fn stopped_with_two_in_a_call(log: &CallLog) {
        for (p, hash) in [("p7", "aa"), ("p8", "bb"), ("p9", "cc")] {
            log.joined("ward-1", p, "home", t(0)).unwrap();
            log.keep_resumable("ward-1", p, hash, &claims(p)).unwrap();
        }
        log.left("ward-1", "p9", t(5)).unwrap();
        let recording = [("ward-1".to_owned(), "p8".to_owned())];
        assert_eq!(log.park_resumable(t(10), &recording).unwrap(), 2, "p9 left");
    }

    #[test]
    fn a_stop_too_long_ago_carries_nothing() {
        for (late, db) in crate::sql::each_engine(CallLog::on) {
            stopped_with_two_in_a_call(&late);
            assert!(
                late.take_carried(t(400), Duration::from_secs(300))
                    .unwrap()
                    .is_empty(),
                "{}",
                db.engine
            );
        }
    }

    #[test]
    fn a_stop_leaves_sessions_for_the_next_process_and_a_leave_or_crash_does_not() {
        for (log, db) in crate::sql::each_engine(CallLog::on) {
            stopped_with_two_in_a_call(&log);
            // A key kept again (a second resume) replaces the first.
            log.keep_resumable("ward-1", "p7", "aa", &claims("p7"))
                .unwrap();
            log.park_resumable(t(10), &[("ward-1".to_owned(), "p8".to_owned())])
                .unwrap();
            assert_eq!(log.highest_participant().unwrap(), 9, "{}", db.engine);

            let mut carried = log.take_carried(t(15), Duration::from_secs(300)).unwrap();
            carried.sort_by_key(|c| c.participant);
            let ids: Vec<String> = carried.iter().map(|c| c.participant.to_string()).collect();
            assert_eq!(ids, ["p7", "p8"]);
            assert_eq!(carried[0].claims, claims("p7"));
            assert_eq!(carried[0].parked_at, t(10));
            assert_eq!((carried[0].recording, carried[1].recording), (false, true));
            log.resumed("ward-1", "p7").unwrap();
            let reconnects: u32 = log
                .read(|c| {
                    c.query_row(
                        "SELECT reconnects FROM participant_sessions WHERE participant = 'p7'",
                        &[],
                        |r| r.get(0),
                    )
                })
                .unwrap();
            assert_eq!(reconnects, 1, "one session, one reconnect");
            // Taken back and unmarked: a crash now leaves nothing to carry.
            assert!(log
                .take_carried(t(16), Duration::from_secs(300))
                .unwrap()
                .is_empty());
        }
    }
}
