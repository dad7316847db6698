//! Which node hosts each room, on a hub of several nodes: a room is placed
//! when its first participant joins, on the least-loaded live node, and
//! stays there while that node lives; every join, on whichever node it
//! arrives, goes where the room is.

use std::time::{Duration, SystemTime};

use super::nodes::LOST_AFTER;
use super::CallLog;
use crate::clock::ms;
use crate::sql::{values, Db, SqlError};
use crate::AdminError;
use carecall_signalling::placement::Adoption;

/// A placement this recent is kept even with nobody in the room yet: its
/// first participant may still be on the way (a redirect, a slow socket).
pub const PLACEMENT_HELD_FOR: Duration = Duration::from_secs(30);

/// The node a room is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Its id.
    pub node: String,
    /// Where browsers reach it.
    pub url: String,
    /// Where its relay is reached, and the name its certificate bears, if
    /// it has one: a room there can span to a node with one too.
    pub relay: Option<(String, String)>,
}

impl CallLog {
    /// The node that hosts `room`: where it is placed if that node is live,
    /// else (a new room, or its node stopped or lost) the live node with the
    /// fewest participants, which it is then placed on. This node counts as
    /// live: it is asking.
    pub fn place_room(&self, room: &str, now: SystemTime) -> Result<Placement, AdminError> {
        self.write(|c| place_in(c, room, self.node_id(), ms(now)))
    }

    /// The session with resume token hash `resume_hash`, kept by another
    /// node: where its browser should resume, or, if that node is gone
    /// and the call's room is placed here now, every session of that call
    /// the gone node kept, taken over by this node (which then closes them
    /// if their browsers do not come back).
    pub fn adopt_sessions(
        &self,
        resume_hash: &str,
        now: SystemTime,
    ) -> Result<Adoption, AdminError> {
        let (this, now) = (self.node_id(), ms(now));
        let kept = |c: &mut Db| -> Result<Option<(String, String)>, SqlError> {
            c.query_row_opt(
                "SELECT room, node FROM resumable_sessions WHERE resume_hash = ?1 AND node <> ?2",
                values![resume_hash, this],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        };
        // A token of no node's session (a stranger's guess) goes no
        // further: no lock is taken for it.
        if self.read(kept)?.is_none() {
            return Ok(Adoption::Unknown);
        }
        let live_since = now - LOST_AFTER.as_millis() as i64;
        let adoption = self.write(|c| {
            // Behind any other node's takeover of the same call: the row
            // read is as it left it.
            c.lock_table("room_placements")?;
            let Some((room, owner)) = kept(c)? else {
                return Ok(Adoption::Unknown);
            };
            // Its node still lives: the browser belongs there.
            let owner_live: Option<String> = c.query_row_opt(
                "SELECT url FROM nodes
                 WHERE id = ?1 AND stopped_at_ms IS NULL AND heartbeat_at_ms >= ?2",
                values![owner, live_since],
                |r| r.get(0),
            )?;
            if let Some(url) = owner_live {
                return Ok(Adoption::Elsewhere(url));
            }
            let gone = owner;
            let placed = place_in(c, &room, this, now)?;
            if placed.node != this {
                return Ok(Adoption::Elsewhere(placed.url));
            }
            // The gone node's last heartbeat: when its sessions last lived.
            let last_heard: i64 = c
                .query_row_opt(
                    "SELECT heartbeat_at_ms FROM nodes WHERE id = ?1",
                    values![gone],
                    |r| r.get(0),
                )?
                .unwrap_or(now);
            c.execute(
                "UPDATE participant_sessions SET node = ?1
                 WHERE room = ?2 AND node = ?3 AND left_at_ms IS NULL",
                values![this, room, gone],
            )?;
            let rows: Vec<(String, String, String, bool)> = c.query_map(
                "SELECT resume_hash, participant, claims_json, recording
                 FROM resumable_sessions WHERE room = ?1 AND node = ?2",
                values![room, gone],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            c.execute(
                "UPDATE resumable_sessions SET node = ?1, parked_at_ms = NULL
                 WHERE room = ?2 AND node = ?3",
                values![this, room, gone],
            )?;
            let sessions = super::carry_over::carried_sessions(
                rows.into_iter()
                    .map(|(hash, participant, claims, recording)| {
                        (hash, participant, claims, last_heard, recording)
                    })
                    .collect(),
            );
            Ok(Adoption::Adopted {
                sessions,
                consent: None,
            })
        })?;
        // The call's consent to record comes along.
        match adoption {
            Adoption::Adopted { sessions, .. } => {
                let room = sessions.first().map(|s| s.claims.room.clone());
                let consent = self
                    .consents_of_open_calls()?
                    .into_iter()
                    .find(|(r, _)| Some(r) == room.as_ref())
                    .map(|(_, c)| c);
                Ok(Adoption::Adopted { sessions, consent })
            }
            other => Ok(other),
        }
    }

    /// Lets go of this node's rooms that nobody is in (`present` are those
    /// with someone), once placed longer ago than [`PLACEMENT_HELD_FOR`]:
    /// their next first join places them afresh. Returns how many.
    pub fn release_empty_rooms(
        &self,
        present: &[String],
        now: SystemTime,
    ) -> Result<usize, AdminError> {
        let before = ms(now) - PLACEMENT_HELD_FOR.as_millis() as i64;
        let this = self.node_id();
        let held: Vec<String> = self.read(|c| {
            c.query_map(
                "SELECT room FROM room_placements WHERE node = ?1 AND placed_at_ms < ?2",
                values![this, before],
                |r| r.get(0),
            )
        })?;
        let empty: Vec<&String> = held.iter().filter(|r| !present.contains(r)).collect();
        if empty.is_empty() {
            return Ok(0);
        }
        self.write(|c| {
            let mut released = 0;
            for room in empty {
                released += c.execute(
                    "DELETE FROM room_placements WHERE room = ?1 AND node = ?2 AND placed_at_ms < ?3",
                    values![room, this, before],
                )?;
            }
            Ok(released)
        })
    }
}

/// The node that hosts `room`, as [`CallLog::place_room`] says, asked by
/// node `this` at `now` (ms), in the caller's transaction.
fn place_in(c: &mut Db, room: &str, this: &str, now: i64) -> Result<Placement, SqlError> {
    let live_since = now - LOST_AFTER.as_millis() as i64;
    // Two nodes placing one room at once take turns.
    c.lock_table("room_placements")?;
    let placement = |r: &crate::sql::Row| {
        let addr: Option<String> = r.get(2)?;
        let name: Option<String> = r.get(3)?;
        Ok(Placement {
            node: r.get(0)?,
            url: r.get(1)?,
            relay: addr.zip(name),
        })
    };
    let placed = c.query_row_opt(
        "SELECT n.id, n.url, n.relay_addr, n.relay_name
         FROM room_placements p JOIN nodes n ON n.id = p.node
         WHERE p.room = ?1 AND n.stopped_at_ms IS NULL
         AND (n.heartbeat_at_ms >= ?2 OR n.id = ?3)",
        values![room, live_since, this],
        placement,
    )?;
    if let Some(placed) = placed {
        return Ok(placed);
    }
    let chosen = c.query_row(
        "SELECT id, url, relay_addr, relay_name FROM nodes
         WHERE stopped_at_ms IS NULL AND (heartbeat_at_ms >= ?1 OR id = ?2)
         ORDER BY participants, rooms, CASE WHEN id = ?2 THEN 0 ELSE 1 END, id
         LIMIT 1",
        values![live_since, this],
        placement,
    )?;
    c.execute(
        "INSERT INTO room_placements (room, node, placed_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (room) DO UPDATE SET node = excluded.node,
             placed_at_ms = excluded.placed_at_ms",
        values![room, chosen.node, now],
    )?;
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::NodeLoad;
    use std::time::UNIX_EPOCH;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn load(participants: u64) -> NodeLoad {
        NodeLoad {
            rooms: participants.min(1),
            participants,
            present: Vec::new(),
        }
    }

    #[test]
    fn a_room_goes_to_the_least_loaded_live_node_and_stays_while_it_lives() {
        for db in crate::sql::test_databases() {
            let e = db.engine;
            let a = CallLog::on(db.open()).with_node("node-a");
            let b = CallLog::on(db.open()).with_node("node-b");
            a.node_started("http://a", t(0)).unwrap();
            b.node_started("http://b", t(0)).unwrap();
            a.node_beat(load(3), t(1)).unwrap();
            b.node_beat(load(1), t(1)).unwrap();

            // Asked on a, placed on b, the less loaded; asked again on
            // either, still b.
            let placed = a.place_room("ward-1", t(2)).unwrap();
            assert_eq!(placed.node, "node-b", "{e}");
            assert_eq!(placed.url, "http://b", "{e}");
            b.node_beat(load(9), t(3)).unwrap();
            assert_eq!(a.place_room("ward-1", t(4)).unwrap().node, "node-b", "{e}");
            // A new room now goes to a.
            assert_eq!(b.place_room("ward-2", t(4)).unwrap().node, "node-a", "{e}");

            // b goes silent: its room moves to a live node, here a.
            a.node_beat(load(3), t(20)).unwrap();
            assert_eq!(a.place_room("ward-1", t(20)).unwrap().node, "node-a", "{e}");
            // b back, and stopping: nothing goes to a stopped node.
            b.node_started("http://b", t(21)).unwrap();
            b.node_stopped(t(22)).unwrap();
            assert_eq!(b.place_room("ward-3", t(22)).unwrap().node, "node-a", "{e}");
        }
    }

    #[test]
    fn a_gone_nodes_call_is_taken_over_by_the_node_its_browsers_resume_on() {
        for db in crate::sql::test_databases() {
            let e = db.engine;
            let a = CallLog::on(db.open()).with_node("node-a");
            let b = CallLog::on(db.open()).with_node("node-b");
            let c = CallLog::on(db.open()).with_node("node-c");
            for (log, url) in [(&a, "http://a"), (&b, "http://b"), (&c, "http://c")] {
                log.node_started(url, t(0)).unwrap();
            }
            a.node_beat(load(0), t(1)).unwrap();
            assert_eq!(a.place_room("ward-1", t(1)).unwrap().node, "node-a", "{e}");
            for (p, hash) in [("p1", "h1"), ("p2", "h2")] {
                a.joined("ward-1", p, "home", t(1)).unwrap();
                let claims = carecall_signalling::JoinClaims::lasting(
                    "ward-1",
                    carecall_signalling::Role::Home,
                    p,
                    Duration::from_secs(3600),
                );
                a.keep_resumable("ward-1", p, hash, &claims).unwrap();
            }
            // While a lives, a resume that reaches b is sent back to a.
            b.node_beat(load(0), t(2)).unwrap();
            assert_eq!(
                b.adopt_sessions("h1", t(3)).unwrap(),
                Adoption::Elsewhere("http://a".into()),
                "{e}"
            );
            assert_eq!(b.adopt_sessions("nobody", t(3)).unwrap(), Adoption::Unknown);

            // Even with its room's placement gone, a live node keeps its
            // sessions.
            a.write(|c| c.execute("DELETE FROM room_placements", &[]))
                .unwrap();
            assert_eq!(
                b.adopt_sessions("h2", t(3)).unwrap(),
                Adoption::Elsewhere("http://a".into()),
                "{e}"
            );

            // a goes silent; the first resume to reach a live node takes
            // the whole call over there.
            b.node_beat(load(0), t(20)).unwrap();
            c.node_beat(load(5), t(20)).unwrap();
            let Adoption::Adopted {
                sessions: mut taken,
                ..
            } = b.adopt_sessions("h1", t(20)).unwrap()
            else {
                panic!("{e}: not taken over");
            };
            taken.sort_by_key(|s| s.participant);
            let ids: Vec<String> = taken.iter().map(|s| s.participant.to_string()).collect();
            assert_eq!(ids, ["p1", "p2"], "{e}");
            assert_eq!(taken[0].parked_at, t(1), "{e}: left when a was last heard");
            // The other browser, reaching c, is sent to b.
            assert_eq!(
                c.adopt_sessions("h2", t(21)).unwrap(),
                Adoption::Elsewhere("http://b".into()),
                "{e}"
            );
            // b's sessions now: a restart of b carries them, a's of nothing.
            assert_eq!(b.close_stale_sessions(&taken).unwrap(), 0, "{e}");
            assert_eq!(a.close_stale_sessions(&[]).unwrap(), 0, "{e}");
        }
    }

    #[test]
    fn a_node_back_from_a_crash_takes_its_calls_back_on_a_shared_database_only() {
        for db in crate::sql::test_databases() {
            let e = db.engine;
            let a = CallLog::on(db.open()).with_node("node-a");
            a.node_started("http://a", t(0)).unwrap();
            a.node_beat(load(1), t(4)).unwrap();
            a.joined("ward-1", "p1", "home", t(1)).unwrap();
            let claims = carecall_signalling::JoinClaims::lasting(
                "ward-1",
                carecall_signalling::Role::Home,
                "p1",
                Duration::from_secs(3600),
            );
            a.keep_resumable("ward-1", "p1", "h1", &claims).unwrap();
            // Killed; started again at t(7).
            let parked = a.park_after_crash().unwrap();
            let carried = a.take_carried(t(7), Duration::from_secs(120)).unwrap();
            if e == "PostgreSQL" {
                assert_eq!(parked, 1, "{e}");
                assert_eq!(carried.len(), 1, "{e}");
                assert_eq!(
                    carried[0].parked_at,
                    t(4),
                    "{e}: left at its last heartbeat"
                );
            } else {
                assert_eq!((parked, carried.len()), (0, 0), "{e}: SQLite closes them");
            }
        }
    }

    #[test]
    fn empty_rooms_are_released_once_their_placement_is_old_enough() {
        for db in crate::sql::test_databases() {
            let e = db.engine;
            let a = CallLog::on(db.open()).with_node("node-a");
            a.node_started("http://a", t(0)).unwrap();
            for room in ["ward-1", "ward-2"] {
                a.place_room(room, t(0)).unwrap();
            }
            a.place_room("ward-3", t(100)).unwrap();
            let present = ["ward-1".to_owned()];
            // ward-3 is too new; ward-1 has someone in it.
            assert_eq!(a.release_empty_rooms(&present, t(101)).unwrap(), 1, "{e}");
            let rooms: Vec<String> = a
                .read(|c| {
                    c.query_map("SELECT room FROM room_placements ORDER BY room", &[], |r| {
                        r.get(0)
                    })
                })
                .unwrap();
            assert_eq!(rooms, ["ward-1", "ward-3"], "{e}");
        }
    }
}
