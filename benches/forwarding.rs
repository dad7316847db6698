//! The forwarding path, measured: one publisher's video packets through a room
//! to 1, 10 and 100 subscribers, one packet at a time and in six-packet
//! frames, over real DTLS-SRTP sessions in simulated time (decrypt once,
//! rewrite, encrypt per subscriber). Throughput is reported in
//! forwarded packets (elements) per second. A counting allocator reports the
//! heap allocations per forwarded packet once per size.
//!
//! A room of three (every participant sending three simulcast layers and
//! sent the others' top one, the care-home shape) is measured the same way.
//!
//! Run: `cargo bench --bench forwarding`

use std::time::{Duration, Instant};

use carecall_sfu::counting_alloc::{allocations, CountingAlloc};
use carecall_sfu::sim::{Frame, SimCall};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// A typical 720p VP8 packet payload size.
const PAYLOAD: [u8; 1100] = [0x42; 1100];

fn call_with(subscribers: usize) -> SimCall {
    let mut call = SimCall::fan_out(subscribers);
    // Subscribers' replies are not needed for forwarding; skipping delivery keeps
    // the measurement on the SFU rather than on the simulated receivers.
    call.deliver = false;
    call.send_video(0, &PAYLOAD, true);
    call
}

/// A delta frame of `packets` packets of [`PAYLOAD`].
fn frame(packets: usize) -> Frame<'static> {
    Frame {
        rid: None,
        payload: &PAYLOAD,
        keyframe: false,
        packets,
    }
}

/// Frames sent outside criterion's timing to count allocations.
const COUNTED_FRAMES: usize = 200;

/// Runs `step` (one frame) [`COUNTED_FRAMES`] times outside criterion's
/// timing, prints the heap allocations per forwarded packet under `label`,
/// and checks that at least `due` packets per frame were forwarded.
fn count_allocations(label: &str, call: &mut SimCall, due: usize, step: impl Fn(&mut SimCall)) {
    let sent_before = call.transmitted;
    let allocs_before = allocations();
    for _ in 0..COUNTED_FRAMES {
        step(call);
    }
    let forwarded = (call.transmitted - sent_before).max(1);
    let allocs = allocations() - allocs_before;
    let due = (COUNTED_FRAMES * due) as u64;
    println!(
        "{label}: {forwarded} datagrams out for {due} packets due, {:.2} heap allocations per forwarded packet (whole path incl. the simulated publishers)",
        allocs as f64 / forwarded as f64
    );
    assert!(forwarded >= due, "the room did not forward every packet");
}

/// Times `iters` frames of `step`, for `Bencher::iter_custom`.
fn time_frames(call: &mut SimCall, iters: u64, step: impl Fn(&mut SimCall)) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        step(call);
    }
    start.elapsed()
}

/// A group timed as every group here is.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(20);
    group
}

/// One publisher's video through a room, `packets` packets per frame: one
/// packet at a time, or a frame's burst taken before the subscribers are
/// polled (as a media worker does with the datagrams waiting on its socket).
fn forwarding_in_frames_of(c: &mut Criterion, group_name: &str, packets: usize) {
    let mut group = group(c, group_name);
    let step = |call: &mut SimCall| {
        call.now += Duration::from_micros(500);
        call.send_frame(0, frame(packets));
    };
    for subscribers in [1usize, 10, 100] {
        let mut call = call_with(subscribers);
        let label = format!("{group_name}, {subscribers} subscriber(s)");
        count_allocations(&label, &mut call, packets * subscribers, step);
        group.throughput(Throughput::Elements((packets * subscribers) as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, _| b.iter_custom(|iters| time_frames(&mut call, iters, step)),
        );
    }
    group.finish();
}

/// Packets on the top layer of each camera frame in a room of three: a
/// 720p frame at about 1.1 Mbit/s and 25 frames/s, in 1,100-byte packets.
const TOP_PACKETS: usize = 6;

/// A room of three, everyone publishing: each tick every participant sends
/// one frame on each layer (1, 2 and [`TOP_PACKETS`] packets) and is sent
/// the other two's top layer. Elements are the packets forwarded per tick;
/// the lower layers are taken in and dropped, as in a real call.
fn room_of_three(c: &mut Criterion) {
    let mut call = SimCall::simulcast(3);
    call.send_simulcast_frames(&PAYLOAD, TOP_PACKETS, true);
    call.deliver = false;
    let step = |call: &mut SimCall| call.send_simulcast_frames(&PAYLOAD, TOP_PACKETS, false);
    let forwarded_per_frame = 3 * 2 * TOP_PACKETS;
    count_allocations("room of three", &mut call, forwarded_per_frame, step);
    let mut group = group(c, "room_of_three_simulcast");
    group.throughput(Throughput::Elements(forwarded_per_frame as u64));
    group.bench_function("top_layer", |b| {
        b.iter_custom(|iters| time_frames(&mut call, iters, step))
    });
    group.finish();
}

fn forwarding(c: &mut Criterion) {
    forwarding_in_frames_of(c, "forward_video_packet", 1);
    forwarding_in_frames_of(c, "forward_video_frame_of_6", 6);
    room_of_three(c);
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
