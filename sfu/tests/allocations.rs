//! The forwarding path's heap allocations, counted: a publisher's packets
//! through a room to 1 and to 100 subscribers over real DTLS-SRTP sessions,
//! in simulated time. What grows with the number of subscribers is the cost
//! of forwarding one packet to one more subscriber: str0m's one SRTP output
//! buffer per datagram and nothing of carecall's. What does not is the cost
//! per incoming packet (the simulated publisher's encryption, str0m's
//! receive path), bounded here so that it cannot creep up unnoticed.

use std::time::Duration;

use carecall_sfu::counting_alloc::{allocations, CountingAlloc};
use carecall_sfu::sim::{Frame, SimCall};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A typical 720p VP8 packet payload.
const PAYLOAD: [u8; 1100] = [0x42; 1100];

/// Frames sent while counting.
const FRAMES: u64 = 200;

/// Allocations and datagrams forwarded for [`FRAMES`] delta frames of
/// `packets` packets each, to `subscribers`, once the call is settled.
fn count(subscribers: usize, packets: usize) -> (u64, u64) {
    let mut call = SimCall::fan_out(subscribers);
    call.deliver = false;
    call.send_video(0, &PAYLOAD, true);
    // Warm up: buffers, maps and queues reach their working size.
    send(&mut call, packets, FRAMES);
    let (allocs, sent) = (allocations(), call.transmitted);
    send(&mut call, packets, FRAMES);
    let forwarded = call.transmitted - sent;
    assert!(
        forwarded >= FRAMES * (packets * subscribers) as u64,
        "every packet forwarded to every subscriber: {forwarded}"
    );
    (allocations() - allocs, forwarded)
}

fn send(call: &mut SimCall, packets: usize, frames: u64) {
    for _ in 0..frames {
        call.now += Duration::from_micros(500);
        call.send_frame(
            0,
            Frame {
                rid: None,
                payload: &PAYLOAD,
                keyframe: false,
                packets,
            },
        );
    }
}

#[test]
fn forwarding_to_one_more_subscriber_costs_only_str0ms_output_buffer() {
    for packets in [1, 6] {
        let (few, few_out) = count(1, packets);
        let (many, many_out) = count(100, packets);
        let per_subscriber = (many - few) as f64 / (many_out - few_out) as f64;
        let incoming = FRAMES * packets as u64;
        let per_incoming = (few as f64 - per_subscriber * few_out as f64) / incoming as f64;
        println!(
            "frames of {packets}: {few} allocations for {few_out} datagrams to 1 subscriber, \
             {many} for {many_out} to 100; {per_subscriber:.3} per packet per subscriber, \
             {per_incoming:.2} per incoming packet"
        );
        assert!(
            per_subscriber <= PER_SUBSCRIBER_CEILING,
            "{per_subscriber:.3} allocations per forwarded datagram (ceiling \
             {PER_SUBSCRIBER_CEILING}): beyond str0m's output buffer, the forwarding path allocates"
        );
        assert!(
            per_incoming <= PER_INCOMING_CEILING,
            "{per_incoming:.2} allocations per incoming packet (ceiling {PER_INCOMING_CEILING})"
        );
    }
}

/// Allocations per datagram forwarded to a subscriber: str0m's one SRTP
/// output buffer, and a little of each session's own timed work (RTCP):
/// 1.02 measured. One allocation per forwarded packet in carecall's code
/// would make it 2.
const PER_SUBSCRIBER_CEILING: f64 = 1.1;

/// Allocations per packet the publisher sends, whatever the number of
/// subscribers: the simulated publisher's own sending and str0m's receive
/// path, 6.2 measured one packet at a time and 6.0 in frames of six
/// (2026-12-04). One more per packet anywhere on the path goes over.
const PER_INCOMING_CEILING: f64 = 7.0;
