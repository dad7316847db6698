//! One call on several nodes: simulated calls whose rooms span each other,
//! everything between them going through the relay's byte format as it
//! would over QUIC (control in order, packets as datagrams). The first node
//! hosts the room; the others span to it, as joining nodes do: a star.

use std::time::Duration;

use super::SimCall;
use crate::cascade::wire::{
    decode_message, decode_packet, encode_message, encode_packet, LinkMessage,
};
use crate::cascade::{Control, LinkId, RelayOutput};

/// The room's number on every link, both ways.
const CHANNEL: u32 = 7;

/// Several nodes' rooms of one call, linked.
pub struct SimCascade {
    /// The nodes: the first hosts the room, the others span to it. Node
    /// `i`'s link to node `j` is `LinkId(j)`.
    pub nodes: Vec<SimCall>,
    /// Packets that left each node over the relay.
    pub packets_crossed: Vec<u64>,
    /// Control messages that crossed, in order, with the node they left.
    pub controls_crossed: Vec<(usize, Control)>,
    /// Drop every packet leaving this node while set.
    pub cut_packets_from: Option<usize>,
}

impl SimCascade {
    /// Spans `a`'s room and `b`'s to each other (participant ids must not
    /// meet: see [`super::SimCallBuilder::first_id`]).
    pub fn new(a: SimCall, b: SimCall) -> SimCascade {
        Self::star(a, vec![b])
    }

    /// `hub` hosts the room; each of `spokes` spans its room to it.
    pub fn star(hub: SimCall, spokes: Vec<SimCall>) -> SimCascade {
        let nodes: Vec<SimCall> = std::iter::once(hub).chain(spokes).collect();
        let n = nodes.len();
        let mut c = SimCascade {
            nodes,
            packets_crossed: vec![0; n],
            controls_crossed: Vec::new(),
            cut_packets_from: None,
        };
        for spoke in 1..n {
            c.nodes[spoke].room.span_to(LinkId(0));
            c.nodes[0].room.span_to(LinkId(spoke as u32));
            c.pump();
        }
        c
    }

    /// The node hosting the room.
    pub fn a(&mut self) -> &mut SimCall {
        &mut self.nodes[0]
    }

    /// The first node spanning to it.
    pub fn b(&mut self) -> &mut SimCall {
        &mut self.nodes[1]
    }

    /// Runs every node for `span` of simulated time in 1 ms steps.
    pub fn settle(&mut self, span: Duration) {
        for _ in 0..span.as_millis() {
            for node in &mut self.nodes {
                node.step();
            }
            self.pump();
        }
    }

    /// Carries everything the rooms have for each other, and what that
    /// sets off, until none has more.
    pub fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            for from in 0..self.nodes.len() {
                moved |= self.cross(from);
            }
            if !moved {
                return;
            }
        }
    }

    /// Carries what node `from` has for the others, through the wire
    /// format; returns whether anything crossed.
    fn cross(&mut self, from: usize) -> bool {
        let mut bytes = Vec::new();
        let mut reached = Vec::new();
        let cut = self.cut_packets_from == Some(from);
        while let Some(output) = self.nodes[from].room.poll_relay() {
            let (link, control, packet) = match output {
                RelayOutput::Control(link, control) => (link, Some(control), None),
                RelayOutput::Packet(link, packet) => (link, None, Some(packet)),
            };
            let to = link.0 as usize;
            let back = LinkId(from as u32);
            let node = &mut self.nodes[to];
            if let Some(control) = control {
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
                node.room.handle_relay_control(node.now, back, read);
                self.controls_crossed.push((from, control));
            } else if let Some(packet) = packet.filter(|_| !cut) {
                encode_packet(CHANNEL, &packet, &mut bytes);
                let (_, read) = decode_packet(&bytes, node.now).expect("a packet reads back");
                node.room.handle_relay_packet(back, read);
                self.packets_crossed[from] += 1;
            }
            if !reached.contains(&to) {
                reached.push(to);
            }
        }
        for to in &reached {
            self.nodes[*to].pump();
        }
        !reached.is_empty()
    }
}
