//! The forwarding path's heap allocations, counted: a publisher's packets
//! through a room to 1 and to 100 subscribers over real DTLS-SRTP sessions,
//! in simulated time. What grows with the number of subscribers is the cost
//! of forwarding one packet to one more subscriber: str0m's one SRTP output
//! buffer per datagram and nothing of carecall's. What does not is the cost
//! per incoming packet (the simulated publisher's encryption, str0m's
//! receive path), bounded here so that it cannot creep up unnoticed.

use std::time::Duration;

use carecall_sfu::counting_alloc::{allocations, live_bytes, CountingAlloc};
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
    let mut call = started_fan_out(subscribers);
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

/// A fan-out to `subscribers` that has sent its first keyframe, delivering
/// nothing to the simulated browsers (only the SFU's side is measured).
fn started_fan_out(subscribers: usize) -> SimCall {
    let mut call = SimCall::fan_out(subscribers);
    call.deliver = false;
    call.send_video(0, &PAYLOAD, true);
    call
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

/// Live heap per subscriber once a top-layer stream (25 frames/s of six
/// 1,100-byte packets, 150 packets/s, about a 720p camera's) has run for
/// `seconds`: the server's session and the simulated browser's together,
/// what 11 subscribers hold beyond what 1 does, over 10.
fn heap_per_subscriber(seconds: u64) -> i64 {
    let held = |subscribers: usize| {
        let mut call = started_fan_out(subscribers);
        for _ in 0..seconds * 25 {
            call.now += Duration::from_millis(40);
            send(&mut call, 6, 1);
        }
        live_bytes()
    };
    let few = held(1);
    (held(11) - few) / 10
}

/// Most of a subscriber's memory is the packets kept for resending. A
/// subscriber of a 150 packet/s top layer held 292 KiB here with a one-second
/// window, 378 with 2 s, 427 with str0m's own 3 s and 232 with no resend
/// cache at all (measured 2026-12-06, after 6 s, when none grows any more).
/// On a short round trip (here none) the top layer is kept 200 ms
/// (`carecall_sfu::forward::resend_window`): 244 KiB; 264 with a 500 ms
/// floor (2026-12-08).
#[test]
fn a_subscriber_on_a_short_round_trip_keeps_a_fifth_of_a_second_of_top_layer_video_for_resending() {
    let held = heap_per_subscriber(6);
    println!("per subscriber: {} KiB live after 6 s", held / 1024);
    assert!(
        held < HELD_CEILING,
        "{} KiB per subscriber (ceiling {} KiB): the resend cache keeps more than 200 ms",
        held / 1024,
        HELD_CEILING / 1024
    );
}

/// Between the 200 ms window's 244 KiB and the 500 ms window's 264.
const HELD_CEILING: i64 = 255 * 1024;
