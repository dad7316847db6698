//! A media worker's rooms, and which room and participant each remote
//! address belongs to. This is the demultiplexing a worker does for every
//! datagram, kept apart from its sockets so it is plain state: fed inputs
//! and time, tested without a network.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use str0m::net::Protocol;
use str0m::Input;

use crate::id::{ParticipantId, RoomId};
use crate::room::Room;

/// A room and when it next wants to be polled.
pub(crate) struct RoomSlot {
    pub(crate) room: Room,
    pub(crate) deadline: Instant,
}

impl RoomSlot {
    /// Runs one poll of the room; a panic in the WebRTC stack is logged and
    /// gives `None` instead of taking the worker down.
    pub(crate) fn poll_guarded<T>(&mut self, poll: impl FnOnce(&mut Room) -> T) -> Option<T> {
        let polled = catch_unwind(AssertUnwindSafe(|| poll(&mut self.room)));
        if polled.is_err() {
            tracing::error!(room = %self.room.id(), "WebRTC stack panicked while polling");
        }
        polled.ok()
    }
}

/// Where a datagram goes: its room's slot and participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) slot: usize,
    pub(crate) participant: ParticipantId,
}

/// One worker's rooms, in slots that are reused once a room empties (a
/// slot's index is stable while its room lives), and the address book that
/// sends each datagram to its participant.
pub(crate) struct Rooms {
    slots: Vec<Option<RoomSlot>>,
    /// Which room and participant a remote address belongs to, learned from
    /// `Rtc::accepts` once and then looked up per packet.
    owners: HashMap<(Protocol, SocketAddr), Owner>,
    /// New rooms estimate their subscribers' downlinks.
    estimate_bandwidth: bool,
}

impl Rooms {
    /// No rooms yet.
    pub(crate) fn new(estimate_bandwidth: bool) -> Rooms {
        Rooms {
            slots: Vec::new(),
            owners: HashMap::new(),
            estimate_bandwidth,
        }
    }

    /// Whose `input` is, from `from` over `proto`: the address book first,
    /// then each room's sessions (`accepts`, an ICE check for this
    /// session). The second value is true when the address was just
    /// learned (a TCP connection is then claimed by the caller).
    pub(crate) fn owner(
        &mut self,
        proto: Protocol,
        from: SocketAddr,
        input: &Input,
    ) -> Option<(Owner, bool)> {
        if let Some(owner) = self.owners.get(&(proto, from)) {
            return Some((*owner, false));
        }
        let owner = self.slots.iter().enumerate().find_map(|(slot, s)| {
            let participant = s.as_ref()?.room.accepts(input)?;
            Some(Owner { slot, participant })
        })?;
        self.owners.insert((proto, from), owner);
        Some((owner, true))
    }

    /// The room in `slot`, if one lives there.
    pub(crate) fn slot(&mut self, slot: usize) -> Option<&mut RoomSlot> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// How many slots there are (live rooms and free slots).
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Every live room.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Room> {
        self.slots.iter().flatten().map(|s| &s.room)
    }

    /// The slot of room `room`, if this worker has it.
    pub(crate) fn find(&self, room: &RoomId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.room.id() == room))
    }

    /// The slot of room `room`, made (in the first free slot) if it is new.
    pub(crate) fn slot_for(&mut self, room: &RoomId, now: Instant) -> usize {
        if let Some(i) = self.find(room) {
            return i;
        }
        let mut new_room = Room::new(room.clone());
        new_room.set_bandwidth_estimation(self.estimate_bandwidth);
        let slot = RoomSlot {
            room: new_room,
            deadline: now,
        };
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.slots.len() - 1
            }
        }
    }

    /// Runs `f` on room `room`, if this worker has it.
    pub(crate) fn with_room<T>(
        &mut self,
        room: &RoomId,
        f: impl FnOnce(&mut Room) -> T,
    ) -> Option<T> {
        let slot = self.find(room)?;
        self.slot(slot).map(|s| f(&mut s.room))
    }

    /// The earliest time a room wants to be polled.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.slots.iter().flatten().map(|s| s.deadline).min()
    }

    /// Frees `slot` if its room has nobody left; true when it did.
    pub(crate) fn drop_if_empty(&mut self, slot: usize) -> bool {
        // A room spanning other nodes stays while it does: their
        // participants are in the call, and one may join here again.
        let empty = |s: &RoomSlot| s.room.is_empty() && !s.room.spans_nodes();
        if self.slot(slot).is_some_and(|s| empty(s)) {
            self.slots[slot] = None;
            return true;
        }
        false
    }

    /// Forgets `participant`'s addresses. `closed` is called with each of
    /// its TCP peers, whose connections should close with it.
    pub(crate) fn forget(
        &mut self,
        participant: ParticipantId,
        mut closed: impl FnMut(SocketAddr),
    ) {
        self.owners.retain(|&(proto, addr), owner| {
            let theirs = owner.participant == participant;
            if theirs && proto == Protocol::Tcp {
                closed(addr);
            }
            !theirs
        });
    }

    /// Remembers that `from` over `proto` is `owner`'s (for tests, which
    /// have no ICE check to learn it from).
    #[cfg(test)]
    fn learn(&mut self, proto: Protocol, from: SocketAddr, owner: Owner) {
        self.owners.insert((proto, from), owner);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use str0m::net::Receive;

    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId(name.into())
    }

    /// An RTP packet (version 2, payload type 96) of a stream no session
    /// has negotiated.
    const RTP: [u8; 16] = [
        0x80, 96, 0, 1, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0xde, 0xad, 0xbe, 0xef,
    ];

    /// `RTP` from `from`, as the worker hands it to a room.
    fn rtp_from(from: SocketAddr, now: Instant) -> Input<'static> {
        let to: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let receive = Receive::new(Protocol::Udp, from, to, &RTP).expect("an RTP packet");
        Input::Receive(now, receive)
    }

    #[test]
    fn a_room_keeps_its_slot_and_an_emptied_slot_is_reused() {
        let now = Instant::now();
        let mut rooms = Rooms::new(true);
        let a = rooms.slot_for(&room("a"), now);
        let b = rooms.slot_for(&room("b"), now + Duration::from_millis(5));
        assert_ne!(a, b);
        assert_eq!(
            rooms.slot_for(&room("a"), now),
            a,
            "the same room, the same slot"
        );
        assert_eq!(rooms.find(&room("b")), Some(b));
        assert_eq!(rooms.next_deadline(), Some(now));
        // Nobody is in room a: it goes, and room c takes its slot.
        rooms.drop_if_empty(a);
        assert_eq!(rooms.find(&room("a")), None);
        assert_eq!(rooms.slot_for(&room("c"), now), a);
        assert_eq!(rooms.slots(), 2, "no slot is added while one is free");
        assert_eq!(rooms.iter().count(), 2);
        assert_eq!(rooms.with_room(&room("z"), |_| ()), None);
    }

    #[test]
    fn a_datagram_nobody_accepts_is_nobodys_and_is_not_remembered() {
        let now = Instant::now();
        let mut rooms = Rooms::new(true);
        rooms.slot_for(&room("a"), now);
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let input = rtp_from(from, now);
        assert_eq!(rooms.owner(Protocol::Udp, from, &input), None);
        assert!(rooms.owners.is_empty());
    }

    #[test]
    fn a_known_address_goes_to_its_owner_until_the_participant_is_forgotten() {
        let now = Instant::now();
        let mut rooms = Rooms::new(true);
        let slot = rooms.slot_for(&room("a"), now);
        let (alice, bob) = (ParticipantId(1), ParticipantId(2));
        let udp: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let tcp: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:5002".parse().unwrap();
        let owner = |participant| Owner { slot, participant };
        rooms.learn(Protocol::Udp, udp, owner(alice));
        rooms.learn(Protocol::Tcp, tcp, owner(alice));
        rooms.learn(Protocol::Udp, other, owner(bob));
        // A datagram from a known address is its owner's without asking
        // the rooms (which would accept nobody's: they are empty).
        let input = rtp_from(udp, now);
        assert_eq!(
            rooms.owner(Protocol::Udp, udp, &input),
            Some((owner(alice), false))
        );
        let mut closed = Vec::new();
        rooms.forget(alice, |addr| closed.push(addr));
        assert_eq!(closed, [tcp], "alice's TCP connection is closed with her");
        assert_eq!(rooms.owners.len(), 1, "bob's address stays");
        assert!(rooms.owners.contains_key(&(Protocol::Udp, other)));
    }
}
