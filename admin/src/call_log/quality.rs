//! Quality over a call, kept for the history: a sample of each participant's
//! link every few seconds, and on each session its worst badge and its
//! reconnects. A sample is small (a dozen numbers); a three-way hour-long
//! call at one sample per 5 s is about 2,200 rows.

use std::time::SystemTime;

use crate::sql::values;

use super::CallLog;
use crate::clock::ms;
use crate::metrics::Snapshot;
use crate::quality::{badge, Badge};
use crate::AdminError;

/// One participant's link at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct QualitySample {
    /// Room name.
    pub room: String,
    /// Participant id.
    pub participant: String,
    /// The badge the dashboard showed.
    pub badge: Badge,
    /// Kbit/s from and to its browser.
    pub receive_kbps: u64,
    /// See `receive_kbps`.
    pub send_kbps: u64,
    /// Loss on its upload (0 to 1).
    pub receive_loss: f32,
    /// Round trip, if measured yet.
    pub rtt_ms: Option<u64>,
    /// The smallest video it receives (nominal height), if any.
    pub lowest_video_height: Option<u32>,
    /// "udp" or "tcp".
    pub transport: Option<&'static str>,
    /// Reconnects so far in this session.
    pub reconnects: u32,
}

/// A sample of everyone present whose media is up.
pub fn samples(snapshot: &Snapshot) -> Vec<QualitySample> {
    snapshot
        .members
        .iter()
        .filter_map(|(room, id, _)| {
            let s = snapshot.media_of(room, *id)?;
            Some(QualitySample {
                room: room.clone(),
                participant: id.to_string(),
                badge: badge(s).0,
                receive_kbps: s.receive_bps / 1000,
                send_kbps: s.send_bps / 1000,
                receive_loss: s.receive_loss,
                rtt_ms: s.rtt.map(|r| r.as_millis() as u64),
                lowest_video_height: s
                    .video_layers
                    .iter()
                    .filter_map(|v| v.layer.map(|l| l.nominal_height()))
                    .min(),
                transport: s.transport,
                reconnects: s.reconnects,
            })
        })
        .collect()
}

impl CallLog {
    /// Stores samples taken at `at` against each participant's open
    /// session, in one transaction. Returns how many found their session
    /// (one whose join the call log has not seen yet is skipped).
    pub fn record_quality(
        &mut self,
        at: SystemTime,
        samples: &[QualitySample],
    ) -> Result<usize, AdminError> {
        self.write(|tx| {
            let mut stored = 0;
            for s in samples {
                let changed = tx.execute(
                    "UPDATE participant_sessions SET
                        worst_badge = CASE WHEN ?3 > COALESCE(worst_badge, 0)
                                           THEN ?3 ELSE COALESCE(worst_badge, 0) END,
                        reconnects = CASE WHEN ?4 > reconnects THEN ?4 ELSE reconnects END,
                        transport = COALESCE(?5, transport)
                     WHERE room = ?1 AND participant = ?2 AND left_at_ms IS NULL",
                    values![
                        s.room,
                        s.participant,
                        s.badge as i64,
                        s.reconnects,
                        s.transport
                    ],
                )?;
                if changed == 0 {
                    continue;
                }
                tx.execute(
                "INSERT INTO quality_samples (session_id, at_ms, badge, receive_kbps, send_kbps,
                     receive_loss, rtt_ms, lowest_video_height, transport)
                 SELECT id, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM participant_sessions
                 WHERE room = ?1 AND participant = ?2 AND left_at_ms IS NULL",
                values![
                    s.room,
                    s.participant,
                    ms(at),
                    s.badge as i64,
                    s.receive_kbps,
                    s.send_kbps,
                    f64::from(s.receive_loss),
                    s.rtt_ms,
                    s.lowest_video_height,
                    s.transport
                ],
            )?;
                stored += 1;
            }
            Ok(stored)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(participant: &str, badge: Badge, reconnects: u32) -> QualitySample {
        QualitySample {
            room: "ward-7".into(),
            participant: participant.into(),
            badge,
            receive_kbps: 1500,
            send_kbps: 2500,
            receive_loss: 0.01,
            rtt_ms: Some(40),
            lowest_video_height: Some(720),
            transport: Some("udp"),
            reconnects,
        }
    }

    #[test]
    fn a_call_keeps_its_worst_badge_and_reconnects() {
        for (mut log, db) in crate::sql::each_engine(CallLog::on) {
            let t = |s: u64| UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s);
            log.joined("ward-7", "p1", "home", t(0)).unwrap();
            log.joined("ward-7", "p2", "clinician", t(0)).unwrap();
            assert_eq!(log.calls().unwrap()[0].worst_badge, None, "not measured");
            let first = [sample("p1", Badge::Green, 0), sample("p2", Badge::Green, 0)];
            assert_eq!(log.record_quality(t(5), &first).unwrap(), 2);
            let second = [sample("p1", Badge::Red, 1), sample("p2", Badge::Amber, 0)];
            log.record_quality(t(10), &second).unwrap();
            // Better again later: the worst is kept, and the reconnect.
            let third = [sample("p1", Badge::Green, 1), sample("p9", Badge::Red, 4)];
            assert_eq!(log.record_quality(t(15), &third).unwrap(), 1, "p9 unknown");
            log.left("ward-7", "p1", t(20)).unwrap();
            log.left("ward-7", "p2", t(20)).unwrap();
            // After the leave, samples no longer land on the closed session.
            assert_eq!(log.record_quality(t(25), &first).unwrap(), 0);
            let call = &log.calls().unwrap()[0];
            assert_eq!(call.worst_badge, Some(Badge::Red));
            assert_eq!(call.reconnects, 1);
            let detail = log.call_detail(call.id).unwrap().unwrap();
            assert_eq!(detail.sessions.len(), 2);
            assert_eq!(detail.sessions[0].samples.len(), 3);
            assert_eq!(detail.sessions[0].worst_badge, Some(Badge::Red));
            assert_eq!(detail.sessions[1].worst_badge, Some(Badge::Amber));
            assert_eq!(
                detail.sessions[0].transport.as_deref(),
                Some("udp"),
                "{}",
                db.engine
            );
        }
    }
}
