//! One call on two nodes: two simulated calls whose rooms span each other,
//! everything between them going through the relay's byte format as it
//! would over QUIC (control in order, packets as datagrams).

use std::time::Duration;

use super::SimCall;
use crate::cascade::wire::{
    decode_message, decode_packet, encode_message, encode_packet, LinkMessage,
};
use crate::cascade::{Control, LinkId, RelayOutput};

/// The link number each side gives the other.
const LINK: LinkId = LinkId(1);

/// The room's number on the link, both ways.
const CHANNEL: u32 = 7;

/// Two nodes' rooms of one call, linked.
pub struct SimCascade {
    /// The call's participants on the first node.
    pub a: SimCall,
    /// Those on the second.
    pub b: SimCall,
    /// Packets that crossed from `a` to `b`, and from `b` to `a`.
    pub packets_crossed: [u64; 2],
    /// Control messages that crossed, in order, with the side they left
    /// (0 for `a`).
    pub controls_crossed: Vec<(usize, Control)>,
    /// Drop every packet crossing from this side (0 for `a`) while set.
    pub cut_packets_from: Option<usize>,
}

impl SimCascade {
    /// Spans `a`'s room and `b`'s to each other (participant ids must not
    /// meet: see [`super::SimCallBuilder::first_id`]).
    pub fn new(a: SimCall, b: SimCall) -> SimCascade {
        let mut c = SimCascade {
            a,
            b,
            packets_crossed: [0; 2],
            controls_crossed: Vec::new(),
            cut_packets_from: None,
        };
        c.a.room.span_to(LINK);
        c.b.room.span_to(LINK);
        c.pump();
        c
    }

    /// The call on side `i` (0 for `a`).
    pub fn side(&mut self, i: usize) -> &mut SimCall {
        match i {
            0 => &mut self.a,
            _ => &mut self.b,
        }
    }

    /// Runs both nodes for `span` of simulated time in 1 ms steps.
    pub fn settle(&mut self, span: Duration) {
        for _ in 0..span.as_millis() {
            self.a.step();
            self.b.step();
            self.pump();
        }
    }

    /// Carries everything both rooms have for each other, and what that
    /// sets off, until neither has more.
    pub fn pump(&mut self) {
        for _ in 0..100 {
            let moved = self.cross(0) | self.cross(1);
            if !moved {
                return;
            }
        }
    }

    /// Carries what side `from` has for the other side, through the wire
    /// format; returns whether anything crossed.
    fn cross(&mut self, from: usize) -> bool {
        let mut bytes = Vec::new();
        let mut moved = false;
        let cut = self.cut_packets_from == Some(from);
        while let Some(output) = self.side(from).room.poll_relay() {
            moved = true;
            let to = self.side(1 - from);
            match output {
                RelayOutput::Control(_, control) => {
                    bytes.clear();
                    let message = LinkMessage::Room {
                        channel: CHANNEL,
                        control: control.clone(),
                    };
                    encode_message(&message, &mut bytes);
                    let Ok(LinkMessage::Room { control: read, .. }) = decode_message(&bytes[2..])
                    else {
                        panic!("a control message did not read back: {control:?}");
                    };
                    to.room.handle_relay_control(to.now, LINK, read);
                    self.controls_crossed.push((from, control));
                }
                RelayOutput::Packet(_, relayed) => {
                    if cut {
                        continue;
                    }
                    encode_packet(CHANNEL, &relayed, &mut bytes);
                    let (_, read) = decode_packet(&bytes, to.now).expect("a packet reads back");
                    to.room.handle_relay_packet(LINK, read);
                    self.packets_crossed[from] += 1;
                }
            }
        }
        if moved {
            self.side(1 - from).pump();
        }
        moved
    }
}
