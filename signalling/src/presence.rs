//! Who is in which call, and how to reach their browser. Control-plane only:
//! media never passes through here, so one mutex is enough.

use std::collections::HashMap;
use std::sync::Mutex;

use carecall_sfu::ParticipantId;
use tokio::sync::mpsc::UnboundedSender;

use crate::protocol::{PeerInfo, ServerMessage};

struct Member {
    info: PeerInfo,
    outbox: UnboundedSender<ServerMessage>,
    /// Ends the member's session.
    end: UnboundedSender<Ending>,
}

/// Why a session is ended from outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The hub ended the call: the browser is told this and leaves.
    Ended(String),
    /// The hub is restarting: the browser is told so and resumes on the
    /// next process; the participant does not leave the call.
    Restarting,
}

/// Participants per room, for the participant list and presence broadcasts.
#[derive(Default)]
pub struct Presence {
    rooms: Mutex<HashMap<String, HashMap<ParticipantId, Member>>>,
}

impl Presence {
    /// Adds a participant and tells the others. Its browser first gets
    /// `first(those already present)` (`joined`, `resumed`), queued before
    /// anyone else's join can reach it: a browser must learn who was there
    /// before who came. `outbox` reaches its browser; `end` ends its session.
    pub fn join(
        &self,
        room: &str,
        id: ParticipantId,
        info: PeerInfo,
        outbox: UnboundedSender<ServerMessage>,
        end: UnboundedSender<Ending>,
        first: impl FnOnce(Vec<PeerInfo>) -> ServerMessage,
    ) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let members = rooms.entry(room.to_owned()).or_default();
        let existing = members.values().map(|m| m.info.clone()).collect();
        let _ = outbox.send(first(existing));
        broadcast(members, &ServerMessage::ParticipantJoined(info.clone()));
        members.insert(id, Member { info, outbox, end });
    }

    /// Updates a participant's mute state and tells the others; returns
    /// what they were told.
    pub fn set_mute(
        &self,
        room: &str,
        id: ParticipantId,
        audio: bool,
        video: bool,
    ) -> Option<PeerInfo> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let members = rooms.get_mut(room)?;
        let member = members.get_mut(&id)?;
        member.info.audio = audio;
        member.info.video = video;
        let info = member.info.clone();
        let update = ServerMessage::ParticipantUpdated(info.clone());
        members
            .iter()
            .filter(|(other, _)| **other != id)
            .for_each(|(_, m)| {
                let _ = m.outbox.send(update.clone());
            });
        Some(info)
    }

    /// Removes a participant without telling the others: the hub is
    /// restarting, and everyone is coming back.
    pub fn leave_quietly(&self, room: &str, id: ParticipantId) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Removes a participant and tells the others. Returns false if absent.
    pub fn leave(&self, room: &str, id: ParticipantId) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(members) = rooms.get_mut(room) else {
            return false;
        };
        if members.remove(&id).is_none() {
            return false;
        }
        broadcast(
            members,
            &ServerMessage::ParticipantLeft {
                participant: id.to_string(),
            },
        );
        if members.is_empty() {
            rooms.remove(room);
        }
        true
    }

    /// Everyone in every room on this node.
    pub fn total(&self) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.values().map(HashMap::len).sum()
    }

    /// Nobody is in `room`.
    pub fn is_empty(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(room).is_none_or(|m| m.is_empty())
    }

    /// Everyone in `room` but `id`.
    pub fn others(&self, room: &str, id: ParticipantId) -> Vec<PeerInfo> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(room).map_or_else(Vec::new, |members| {
            members
                .iter()
                .filter(|(other, _)| **other != id)
                .map(|(_, m)| m.info.clone())
                .collect()
        })
    }

    /// Everyone present: room, participant and role, for the admin plane.
    pub fn members(&self) -> Vec<(String, ParticipantId, crate::Role)> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms
            .iter()
            .flat_map(|(room, members)| {
                members
                    .iter()
                    .map(move |(id, m)| (room.clone(), *id, m.info.role))
            })
            .collect()
    }

    /// The rooms of `members` (as [`Presence::members`] lists them), each
    /// once, sorted.
    pub fn rooms_of(members: &[(String, ParticipantId, crate::Role)]) -> Vec<&str> {
        let mut rooms: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
        rooms.sort_unstable();
        rooms.dedup();
        rooms
    }

    /// Ends the call in `room`: every session in it is told `message` and
    /// closed (each leaves as usual). Returns how many were in it.
    pub fn end_room(&self, room: &str, message: &str) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let Some(members) = rooms.get(room) else {
            return 0;
        };
        for m in members.values() {
            let _ = m.end.send(Ending::Ended(message.to_owned()));
        }
        members.len()
    }

    /// Tells every session in every room that the hub is restarting.
    /// Returns how many were told.
    pub fn restarting(&self) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let all = rooms.values().flat_map(HashMap::values);
        all.filter(|m| m.end.send(Ending::Restarting).is_ok())
            .count()
    }

    /// Whether no room has anyone in it.
    pub fn is_all_empty(&self) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.values().all(HashMap::is_empty)
    }

    /// Sends `msg` to participant `id` in `room`; false if they are not there.
    pub fn send_to(&self, room: &str, id: ParticipantId, msg: ServerMessage) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let member = rooms.get(room).and_then(|members| members.get(&id));
        member.is_some_and(|m| m.outbox.send(msg).is_ok())
    }

    /// Sends `msg` to everyone in `room`.
    pub fn broadcast(&self, room: &str, msg: &ServerMessage) {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = rooms.get(room) {
            broadcast(members, msg);
        }
    }

    /// Number of participants in a room.
    pub fn count(&self, room: &str) -> usize {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(room).map_or(0, HashMap::len)
    }
}

fn broadcast(members: &HashMap<ParticipantId, Member>, msg: &ServerMessage) {
    for m in members.values() {
        let _ = m.outbox.send(msg.clone());
    }
}
