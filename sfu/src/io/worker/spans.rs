//! A worker's rooms that span other nodes: which link carries which room
//! under which numbers, and moving what the rooms say between them and the
//! relay thread (see `io/relay.rs`).

use std::time::Instant;

use super::Worker;
use crate::cascade::wire::LinkMessage;
use crate::cascade::{LinkId, RelayOutput};
use crate::error::SfuError;
use crate::id::RoomId;
use crate::io::link_queue::LinkQueue;
use crate::io::relay::{Outgoing, RelayCommand};

/// One room carried by one link.
pub(super) struct Span {
    slot: usize,
    link: LinkId,
    /// This node's number for the room on the link.
    ours: u32,
    /// The other node's, once it has opened its side.
    theirs: Option<u32>,
    /// This node opened it (a participant joined here for a room hosted
    /// there); it closes it when its last participant leaves.
    opened: bool,
    writer: LinkQueue,
}

impl Worker {
    pub(super) fn relay_command(&mut self, now: Instant, command: RelayCommand) {
        match command {
            RelayCommand::SpanTo { room, link, reply } => {
                let _ = reply.send(self.open_span(now, &room, link, None));
            }
            RelayCommand::Open { room, link, theirs } => {
                if let Err(e) = self.open_span(now, &room, link, Some(theirs)) {
                    tracing::warn!(%room, link = link.0, error = %e, "room from another node refused");
                }
            }
            RelayCommand::Close { link, theirs } => {
                if let Some(i) = self.span_of(link, theirs) {
                    let span = self.spans.swap_remove(i);
                    // Our side closes too, so the other node forgets our number.
                    let close = LinkMessage::Close { channel: span.ours };
                    let _ = span.writer.send(Outgoing::Message(close));
                    if let Some(s) = self.rooms.slot(span.slot) {
                        s.room.unspan(link);
                    }
                    self.poll_room(now, span.slot);
                }
            }
            RelayCommand::Control {
                link,
                theirs,
                control,
            } => {
                if let Some(i) = self.span_of(link, theirs) {
                    let slot = self.spans[i].slot;
                    if let Some(s) = self.rooms.slot(slot) {
                        s.room.handle_relay_control(now, link, control);
                    }
                    self.poll_room(now, slot);
                }
            }
            RelayCommand::Packet {
                link,
                theirs,
                packet,
            } => {
                if let Some(i) = self.span_of(link, theirs) {
                    let slot = self.spans[i].slot;
                    if let Some(s) = self.rooms.slot(slot) {
                        s.room.handle_relay_packet(link, packet);
                        if !self.touched.contains(&slot) {
                            self.touched.push(slot);
                        }
                    }
                }
            }
            RelayCommand::LinkLost { link } => {
                let (gone, kept) = std::mem::take(&mut self.spans)
                    .into_iter()
                    .partition::<Vec<_>, _>(|s| s.link == link);
                self.spans = kept;
                for span in gone {
                    if let Some(s) = self.rooms.slot(span.slot) {
                        s.room.unspan(link);
                        // Spanned from here: spanned again once the link is.
                        if span.opened {
                            self.lost_spans.push((s.room.id().clone(), link));
                        }
                    }
                    self.poll_room(now, span.slot);
                }
            }
            RelayCommand::Relinked { lost, new } => self.span_again(now, lost, new),
        }
    }

    /// Spans again over `new` the rooms this worker spanned over the lost
    /// link `lost`, where someone is still in them here.
    fn span_again(&mut self, now: Instant, lost: LinkId, new: Option<LinkId>) {
        let (again, waiting) = std::mem::take(&mut self.lost_spans)
            .into_iter()
            .partition::<Vec<_>, _>(|(_, link)| *link == lost);
        self.lost_spans = waiting;
        let Some(new) = new else {
            return;
        };
        for (room, _) in again {
            let occupied = self
                .rooms
                .find(&room)
                .is_some_and(|slot| self.rooms.slot(slot).is_some_and(|s| !s.room.is_empty()));
            if !occupied {
                continue;
            }
            match self.open_span(now, &room, new, None) {
                Ok(()) => tracing::info!(%room, link = new.0, "room spans its node again"),
                Err(e) => {
                    // Lost again already: spanned once it is made again.
                    tracing::warn!(%room, link = new.0, error = %e, "room could not span again");
                    self.lost_spans.push((room, new));
                }
            }
        }
    }

    /// Spans `room` over `link`: opened here (`theirs` is `None`), or
    /// answering the other node's open.
    fn open_span(
        &mut self,
        now: Instant,
        room: &RoomId,
        link: LinkId,
        theirs: Option<u32>,
    ) -> Result<(), SfuError> {
        let slot = self.rooms.slot_for(room, now);
        if let Some(span) = self
            .spans
            .iter_mut()
            .find(|s| s.slot == slot && s.link == link)
        {
            span.theirs = theirs.or(span.theirs);
            return Ok(());
        }
        let relay = self
            .relay
            .as_ref()
            .ok_or_else(|| SfuError::Relay("this node has no relay configured".into()))?;
        let writer = relay
            .writer(link)
            .ok_or_else(|| SfuError::Relay(format!("link {} is gone", link.0)))?;
        let ours = relay.new_channel();
        let open = LinkMessage::Open {
            channel: ours,
            room: room.clone(),
        };
        if writer.send(Outgoing::Message(open)).is_err() {
            return Err(SfuError::Relay(format!("link {} is gone", link.0)));
        }
        self.spans.push(Span {
            slot,
            link,
            ours,
            theirs,
            opened: theirs.is_none(),
            writer,
        });
        if let Some(s) = self.rooms.slot(slot) {
            s.room.span_to(link);
        }
        self.poll_room(now, slot);
        Ok(())
    }

    fn span_of(&self, link: LinkId, theirs: u32) -> Option<usize> {
        self.spans
            .iter()
            .position(|s| s.link == link && s.theirs == Some(theirs))
    }

    /// Hands what the room in `slot` has for other nodes to their links.
    /// When its last participant here left, the links this node opened are
    /// closed.
    pub(super) fn flush_relay(&mut self, slot: usize) {
        let Some(s) = self.rooms.slot(slot) else {
            return;
        };
        if self.spans.is_empty() {
            return;
        }
        while let Some(output) = s.room.poll_relay() {
            let (link, out) = match output {
                RelayOutput::Control(link, control) => (link, Err(control)),
                RelayOutput::Packet(link, packet) => (link, Ok(packet)),
            };
            let Some(span) = self.spans.iter().find(|s| s.slot == slot && s.link == link) else {
                continue;
            };
            let out = match out {
                Ok(packet) => Outgoing::Packet(span.ours, packet),
                Err(control) => Outgoing::Message(LinkMessage::Room {
                    channel: span.ours,
                    control,
                }),
            };
            let _ = span.writer.send(out);
        }
        if !s.room.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.spans.len() {
            let span = &self.spans[i];
            if span.slot == slot && span.opened {
                let close = LinkMessage::Close { channel: span.ours };
                let _ = span.writer.send(Outgoing::Message(close));
                s.room.unspan(span.link);
                self.spans.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// The room in `slot` is gone: so are its spans, and those waiting
    /// for a lost link.
    pub(super) fn forget_spans(&mut self, slot: usize) {
        self.spans.retain(|s| s.slot != slot);
        let rooms = &self.rooms;
        self.lost_spans
            .retain(|(room, _)| rooms.find(room).is_some());
    }
}
