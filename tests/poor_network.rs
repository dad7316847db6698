//! Poor care-home networks, emulated: three real browsers in one call, one of
//! them inside a network namespace whose link the test narrows, makes lossy
//! and delays while the call runs (see `docs/testing.md`). The SFU runs with
//! downlink bandwidth estimation on, as by default. Needs root for the namespace; without it
//! these tests fail with the system's error.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, Inbound, OPUS_PACKETS_PER_SECOND};
use crate::support::calls::snapshot;
use crate::support::home_lab::HomeLab;
use crate::support::metrics;
use crate::support::relay::{DelayRelay, Impairment, Path};

/// A running call: two browsers on the hub's side (loopback) and the care
/// home's browser in its own namespace.
struct Call {
    // Field order is drop order: browsers, then drivers, then the network.
    clinician: Browser,
    specialist: Browser,
    home: Browser,
    relay: Option<DelayRelay>,
    lab: HomeLab,
}

impl Call {
    /// Starts the server on the namespace link's host address and the three
    /// browsers; with `relay`, the home's media passes through a delay relay.
    async fn start(relay: bool) -> Call {
        let mut lab = HomeLab::start().await;
        let relay = relay.then(|| {
            let media = lab.server.media_addrs[0];
            let r = DelayRelay::start((lab.net.host_ip, 0).into(), media);
            lab.net.redirect_udp(media, r.addr);
            r
        });
        let server = &lab.server;
        let clinician = lab.hub.browser().await;
        clinician
            .join(&server.link("consult-7", "clinician", "Hub clinician", "1h"))
            .await;
        let specialist = lab.hub.browser().await;
        specialist
            .join(&server.link("consult-7", "specialist", "Consultant", "1h"))
            .await;
        let home = lab.away.browser().await;
        home.join(&server.link("consult-7", "home", "Rose Court", "1h"))
            .await;
        for b in [&clinician, &specialist, &home] {
            time_until(
                b,
                Duration::from_secs(60),
                "both remote videos decoding",
                |v| v.len() == 2 && v.values().all(|i| i.frames_decoded > 0),
            )
            .await;
        }
        Call {
            clinician,
            specialist,
            home,
            relay,
            lab,
        }
    }
}

/// The remote videos `b` decodes, by participant.
async fn videos(b: &Browser) -> HashMap<String, Inbound> {
    snapshot(b).await.0
}

/// Polls `b` every 250 ms until `done` holds for its remote videos; returns
/// how long that took. Fails after `within`.
async fn time_until(
    b: &Browser,
    within: Duration,
    what: &str,
    done: impl Fn(&HashMap<String, Inbound>) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let v = videos(b).await;
        let took = start.elapsed();
        if !v.is_empty() && done(&v) && took <= within {
            return took;
        }
        assert!(
            start.elapsed() < within,
            "{what} not within {within:?}: {:?}",
            v.values()
                .map(|i| (&i.participant, i.width, i.height, i.frames_decoded))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How long a remote video may stand still, summed over every window
/// [`assert_video_rising`] tries (Chromium's `totalFreezesDuration`): a
/// decoder starved of CPU for a moment passes, a frozen picture does not.
const MOST_FROZEN: Duration = Duration::from_millis(1500);

/// Asserts that the remote videos in `b` (all, or only `from`'s) decode more
/// than three new frames in a window of `span`, at a height in `heights`.
/// Windows are tried one after another for up to `within`: on this 2-core
/// machine running three browsers, a decoder starved of CPU for a second is
/// not what these tests measure, a video that stays frozen is, so the time
/// frozen over all the windows tried is bounded by [`MOST_FROZEN`].
async fn assert_video_rising(
    b: &Browser,
    span: Duration,
    within: Duration,
    heights: RangeInclusive<u64>,
    who: &str,
    from: Option<&str>,
) {
    let start = Instant::now();
    let first = videos(b).await;
    let outcome = loop {
        match video_rising(b, span, &heights, from).await {
            Ok(report) => break Ok(report),
            Err(why) if start.elapsed() + span > within => break Err(why),
            Err(why) => println!("{who} <- {why}; trying another {span:?}"),
        }
    };
    let last = videos(b).await;
    for (id, v) in last.iter().filter(|(id, _)| from.is_none_or(|f| f == *id)) {
        let was = first.get(id).map_or(0.0, |x| x.frozen_seconds);
        let frozen = Duration::from_secs_f64((v.frozen_seconds - was).max(0.0));
        assert!(
            frozen <= MOST_FROZEN,
            "{who} <- {id}: frozen for {frozen:?} in {:?} ({} freezes in all)",
            start.elapsed(),
            v.freezes
        );
    }
    match outcome {
        Ok(report) => println!("{who} <- {report}"),
        Err(why) => panic!("{who} <- {why}"),
    }
}

/// One window of [`assert_video_rising`]: what rose, or why not.
async fn video_rising(
    b: &Browser,
    span: Duration,
    heights: &RangeInclusive<u64>,
    from: Option<&str>,
) -> Result<String, String> {
    let before = videos(b).await;
    tokio::time::sleep(span).await;
    let after = videos(b).await;
    if let Some(id) = from {
        if !after.contains_key(id) {
            return Err(format!("{id}: no video"));
        }
    }
    let mut report = Vec::new();
    for (id, v) in after.iter().filter(|(id, _)| from.is_none_or(|f| f == *id)) {
        let was = before.get(id);
        let earlier = was.map_or(0, |x| x.frames_decoded);
        if v.frames_decoded <= earlier + 3 || !heights.contains(&v.height) {
            return Err(format!(
                "{id}: {}p, {} frames in {span:?}; before {was:?}, after {v:?}",
                v.height,
                v.frames_decoded - earlier
            ));
        }
        report.push(format!(
            "{id}: {}x{}, {} frames in {span:?}",
            v.width,
            v.height,
            v.frames_decoded - earlier
        ));
    }
    Ok(report.join("; "))
}

/// What the SFU's own counters say of `b`'s downlink: the height of the
/// layer it forwards from each sender, and its layer switches, video pauses
/// and estimate. Polls up to 5 s for `done` to hold (the figures are
/// gathered once a second).
async fn sfu_view(
    call: &Call,
    b: &Browser,
    what: &str,
    done: impl Fn(&[(String, f64)], f64, f64) -> bool,
) {
    let id = b.participant().await.expect("joined");
    let start = Instant::now();
    loop {
        let text = metrics::scrape(&call.lab.server.base_url).await;
        let heights = metrics::participant_values_by(
            &text,
            "carecall_participant_video_layer_height_pixels",
            &id,
            "origin",
        );
        let value = |name| metrics::participant_value(&text, name, &id).unwrap_or(0.0);
        let switches = value("carecall_participant_layer_switches_total");
        let pauses = value("carecall_participant_video_pauses_total");
        let estimate = value("carecall_participant_downlink_estimate_bytes_per_second");
        let report = format!(
            "SFU for {id}: layer heights {heights:?}, {switches} switches, {pauses} pauses, estimate {} kbit/s",
            estimate as u64 * 8 / 1000
        );
        if heights.len() == 2 && done(&heights, switches, pauses) {
            return println!("{report}");
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: {report}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Prints a wall-clock mark, to line the test's steps up with the server log.
fn tracing_mark(what: &str) {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    println!("[{}.{:03}] {what}", t.as_secs() % 86_400, t.subsec_millis());
}

// The hub's side used to fail here on this 2-core machine: a CPU-starved
// browser's feedback reads as queuing, and the loopback viewers' estimates
// fell for a second at a time. A dip on a link that loses nothing now waits
// 2 s to be believed (`sfu/src/bandwidth.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_cut_to_600_kbits_steps_down_within_5_s_and_back_to_hd_within_15_s() {
    let call = Call::start(false).await;
    let hd = time_until(&call.home, Duration::from_secs(60), "home in HD", |v| {
        v.values().all(|i| i.height == 720)
    });
    println!(
        "home receives both in HD after {} ms more",
        hd.await.as_millis()
    );

    call.lab.net.limit_downlink(Some(600));
    tracing_mark("home downlink limited to 600 kbit/s");
    let down = time_until(
        &call.home,
        Duration::from_secs(5),
        "step down to 360p or lower",
        |v| v.values().all(|i| i.height > 0 && i.height <= 360),
    )
    .await;
    println!("step down at 600 kbit/s: {} ms", down.as_millis());
    sfu_view(
        &call,
        &call.home,
        "the SFU forwards 360p or less",
        |h, switches, _| h.iter().all(|(_, px)| (1.0..=360.0).contains(px)) && switches >= 2.0,
    )
    .await;
    let [two, four, six] = [2, 4, 6].map(Duration::from_secs);
    assert_video_rising(&call.home, four, 2 * four, 1..=360, "home", None).await;
    // The hub's side is not dragged down: video flows, and each hub
    // participant still sees the other in 720p.
    assert_video_rising(&call.clinician, two, six, 1..=720, "clinician", None).await;
    let clinician = call.clinician.participant().await.expect("clinician id");
    let specialist = call.specialist.participant().await.expect("specialist id");
    for (b, who, other) in [
        (&call.clinician, "clinician", &specialist),
        (&call.specialist, "specialist", &clinician),
    ] {
        time_until(b, six, "HD from the other hub participant", |v| {
            v.get(other).is_some_and(|i| i.height == 720)
        })
        .await;
        println!("{who} still sees {other} in HD");
    }

    call.lab.net.limit_downlink(None);
    tracing_mark("home downlink limit lifted");
    let up = time_until(&call.home, Duration::from_secs(15), "back to 720p", |v| {
        v.values().all(|i| i.height == 720)
    })
    .await;
    println!("step up after the limit is lifted: {} ms", up.as_millis());
    sfu_view(&call, &call.home, "the SFU forwards 720p", |h, _, _| {
        h.iter().all(|(_, px)| *px == 720.0)
    })
    .await;
    assert_video_rising(&call.home, two, six, 720..=720, "home", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_with_800_kbits_upload_keeps_sending_lower_layers_and_unbroken_audio() {
    let call = Call::start(false).await;
    let home = call.home.participant().await.expect("home joined");
    for b in [&call.clinician, &call.specialist] {
        time_until(b, Duration::from_secs(60), "the home in HD", |v| {
            v.get(&home).is_some_and(|i| i.height == 720)
        })
        .await;
        b.watch_audio_gaps().await;
    }

    call.lab.net.limit_uplink(Some(800));
    tracing_mark("home uplink limited to 800 kbit/s");
    let down = time_until(
        &call.clinician,
        Duration::from_secs(15),
        "home's video on its 360p layer",
        |v| v.get(&home).is_some_and(|i| i.height == 360),
    )
    .await;
    println!(
        "hub sees the home's lower layer after {} ms",
        down.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (b, who) in [
        (&call.clinician, "clinician"),
        (&call.specialist, "specialist"),
    ] {
        let span = Duration::from_secs(3);
        let heard = Instant::now();
        let (_, a0) = snapshot(b).await;
        assert_video_rising(b, span, 3 * span, 360..=360, who, Some(&home)).await;
        let (_, a1) = snapshot(b).await;
        // At least 90% of the home's audio packets arrive.
        let packets = |a: &HashMap<String, Inbound>| a.get(&home).map_or(0, |i| i.packets);
        let least = (0.9 * OPUS_PACKETS_PER_SECOND * heard.elapsed().as_secs_f64()) as u64;
        assert!(
            packets(&a1) >= packets(&a0) + least,
            "{who}: the home's audio is not arriving at its rate ({} -> {} packets in {:?})",
            packets(&a0),
            packets(&a1),
            heard.elapsed()
        );
        let gaps = b.longest_audio_gaps().await;
        let gap = gaps.get(&home).copied().unwrap_or(f64::MAX);
        println!("{who}: longest gap in the home's audio {gap:.0} ms (all: {gaps:?})");
        assert!(gap < 500.0, "{who}: home's audio had a {gap:.0} ms gap");
    }
}

/// How long the sound is listened to at 150 kbit/s. Over 10 s (about 480
/// packets per remote) readings on one build ranged from 3.9% to 10.2%
/// concealed; a longer window narrows that spread without moving its mean.
const LISTEN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_150_kbits_with_loss_and_delay_the_sound_stays_clear_and_video_comes_back() {
    let call = Call::start(true).await;
    let relay = call.relay.as_ref().expect("relay in the home's path");
    let down = Impairment {
        delay: Duration::from_millis(100),
        ..Impairment::default()
    };
    relay.set(Path {
        down,
        ..Path::default()
    });
    call.lab.net.limit_downlink(Some(150));
    call.lab.net.downlink_loss(0.05);
    tracing_mark("home downlink: 150 kbit/s, 5% loss, 100 ms delay");

    let start = Instant::now();
    while call.home.paused_notes().await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "video not paused at 150 kbit/s: {:?}",
            videos(&call.home).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "both videos paused after {} ms",
        start.elapsed().as_millis()
    );
    sfu_view(
        &call,
        &call.home,
        "the SFU pauses both videos",
        |h, _, pauses| h.iter().all(|(_, px)| *px == 0.0) && pauses >= 2.0,
    )
    .await;
    // A reading every second, for the worst 10 s within the 20.
    let mut readings = vec![snapshot(&call.home).await.1];
    for _ in 0..LISTEN.as_secs() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        readings.push(snapshot(&call.home).await.1);
    }
    let (a0, a1) = (&readings[0], &readings[readings.len() - 1]);
    assert_eq!(a1.len(), 2, "home hears both hub participants: {a1:?}");
    for (who, a) in a1 {
        let before = &a0[who];
        let samples = a.samples - before.samples;
        let concealed = a.concealed - before.concealed;
        let share = concealed as f64 / samples.max(1) as f64;
        let worst = readings
            .windows(11)
            .map(|w| {
                let (x, y) = (&w[0][who], &w[10][who]);
                (y.concealed - x.concealed) as f64 / (y.samples - x.samples).max(1) as f64
            })
            .fold(0.0, f64::max);
        println!(
            "home <- {who} audio: {} packets, {:.1}% concealed in {} s, {:.1}% in the worst 10 s",
            a.packets - before.packets,
            share * 100.0,
            LISTEN.as_secs(),
            worst * 100.0
        );
        // At least half of what was sent arrives.
        let sent = OPUS_PACKETS_PER_SECOND * LISTEN.as_secs_f64();
        assert!(
            a.packets > before.packets + (sent / 2.0) as u64,
            "{who}: audio not flowing"
        );
        assert!(
            share < 0.10,
            "{who}: {:.1}% of the sound concealed",
            share * 100.0
        );
    }

    relay.set(Path::default());
    call.lab.net.downlink_loss(0.0);
    call.lab.net.limit_downlink(None);
    tracing_mark("home downlink restored");
    let back = Instant::now();
    while call.home.paused_notes().await > 0 {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "video did not come back after the limit was lifted"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("video back after {} ms", back.elapsed().as_millis());
    // The SFU's note comes as forwarding resumes; the picture starts at the
    // next keyframe. That wait is part of coming back (bounded above), so
    // Chromium's freeze count is read from the first new frame on: once
    // rendered, the gap before it is already booked.
    let at_back = videos(&call.home).await;
    let decoding = time_until(
        &call.home,
        Duration::from_secs(30).saturating_sub(back.elapsed()),
        "both videos decoding again",
        |v| {
            v.len() == 2
                && v.iter().all(|(id, i)| {
                    i.frames_decoded > at_back.get(id).map_or(0, |x| x.frames_decoded)
                })
        },
    )
    .await;
    println!(
        "both videos decoding {} ms after the note",
        decoding.as_millis()
    );
    let span = Duration::from_secs(3);
    assert_video_rising(&call.home, span, 3 * span, 1..=720, "home", None).await;
}
