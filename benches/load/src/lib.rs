//! `carecall-load`: participants on webrtc-rs (a WebRTC stack independent of
//! the SFU's) join a running carecall over its real signalling and
//! DTLS-SRTP, publish a real VP8 clip in three simulcast layers and Opus,
//! looped, and measure what the SFU forwards: packets per second, the
//! server's CPU per million packets (from `/proc`), its memory per
//! participant, loss and latency.
//! Every run is bounded in participants and seconds.
//!
//! Each received packet is known by its bytes (see [`clip`]), so loss and
//! latency are measured on media a browser could decode.

mod churn;
pub mod clip;
pub mod hub_ca;
pub mod janus;
pub mod lite;
mod mmsg;
pub mod peer;
pub mod proc;
mod relay;
mod report;
mod soak;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use carecall_signalling::{JoinClaims, LinkSigner, Role};

use clip::STREAMS;
use peer::Publish;

pub use churn::{churn, ChurnReport};
pub use peer::LoadPeer;
pub use report::Report;
pub use soak::{soak, SoakReport};

/// Largest run: participants in one scenario.
pub const MAX_PARTICIPANTS: usize = 600;

/// Longest run, seconds.
pub const MAX_SECONDS: f64 = 300.0;

/// Which SFU is under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sfu {
    /// carecall: `base_url` is its HTTP base URL.
    Carecall,
    /// Janus's VideoRoom: `base_url` is its WebSocket transport's URL.
    Janus,
}

/// The server under load.
pub struct Target {
    /// Which server.
    pub sfu: Sfu,
    /// Its base URL, e.g. `http://127.0.0.1:8080` (carecall) or
    /// `ws://127.0.0.1:8188` (Janus).
    pub base_url: String,
    /// Its link secret, to sign the participants' join links (carecall).
    pub secret: Vec<u8>,
    /// Its process id, for CPU and memory.
    pub pid: u32,
    /// The address the participants' WebRTC sockets bind: loopback for
    /// carecall; the host end of the namespace link Janus runs behind.
    pub local_ip: std::net::IpAddr,
    /// A second carecall node the rooms span to (both with relays, on one
    /// PostgreSQL; see `docs/scaling.md`): each room's specialist joins
    /// there, everyone else here.
    pub far: Option<Box<Target>>,
}

impl Target {
    /// This node and the far one, if any.
    fn nodes(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(self).chain(self.far.as_deref())
    }

    /// The server CPU seconds of every node.
    fn cpu_seconds(&self) -> Result<f64> {
        self.nodes().map(|n| proc::cpu_seconds(n.pid)).sum()
    }

    /// The memory of every node, added up.
    fn memory(&self) -> Result<proc::Memory> {
        let mut sum = proc::Memory::default();
        for n in self.nodes() {
            let m = proc::memory(n.pid)?;
            sum.resident += m.resident;
            sum.anonymous += m.anonymous;
        }
        Ok(sum)
    }

    /// The node `role` joins: the far one for a specialist, if there is one.
    fn node_for(&self, role: Role) -> &Target {
        match (&self.far, role) {
            (Some(far), Role::Specialist) => far,
            _ => self,
        }
    }

    fn ws_url(&self) -> String {
        format!("{}/ws", self.base_url.replacen("http", "ws", 1))
    }

    fn token(&self, room: &str, role: Role, name: &str) -> Result<String> {
        let claims = JoinClaims::lasting(room, role, name, std::time::Duration::from_secs(3600));
        LinkSigner::new(&self.secret)
            .sign(&claims)
            .map_err(|e| anyhow::anyhow!("signing a join link: {e}"))
    }
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One publisher, `subscribers` watching it.
    FanOut {
        /// How many watch.
        subscribers: usize,
    },
    /// One publisher, `subscribers` showing it as a thumbnail: each is sent
    /// the lowest simulcast layer, so many more can watch on one machine.
    Thumbnails {
        /// How many watch.
        subscribers: usize,
    },
    /// `rooms` calls of three (home, clinician, specialist), all publishing.
    Rooms {
        /// How many calls at once.
        rooms: usize,
    },
}

impl Scenario {
    fn name(&self) -> String {
        match self {
            Scenario::FanOut { subscribers } => format!("fan-out 1 -> {subscribers}"),
            Scenario::Thumbnails { subscribers } => {
                format!("fan-out 1 -> {subscribers}, thumbnails")
            }
            Scenario::Rooms { rooms } => format!("{rooms} rooms of 3"),
        }
    }

    /// The simulcast layer subscribers watch (an index in the clip's
    /// layers): the top one, as a large tile takes, or a thumbnail's.
    fn view(&self) -> usize {
        match self {
            Scenario::Thumbnails { .. } => 0,
            _ => clip::TOP,
        }
    }

    /// (room, role, publishes) for each participant.
    fn participants(&self, run: &str) -> Vec<(String, Role, bool)> {
        match *self {
            Scenario::FanOut { subscribers } | Scenario::Thumbnails { subscribers } => {
                let room = format!("load-{run}-fanout");
                std::iter::once((room.clone(), Role::Home, true))
                    .chain((0..subscribers).map(|_| (room.clone(), Role::Clinician, false)))
                    .collect()
            }
            Scenario::Rooms { rooms } => (0..rooms)
                .flat_map(|r| {
                    let room = format!("load-{run}-room-{r}");
                    [Role::Home, Role::Clinician, Role::Specialist]
                        .map(|role| (room.clone(), role, true))
                })
                .collect(),
        }
    }
}

/// How to run it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Seconds of media before measuring (keyframes, estimates settle).
    pub warmup: f64,
    /// Print a line a second while measuring.
    pub progress: bool,
    /// Viewers (participants who only receive) on str0m, many to a task
    /// ([`lite`]), instead of one webrtc-rs peer each.
    pub lite_viewers: bool,
    /// Publishers on str0m too, in the same task as the light viewers.
    pub lite_publishers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 10.0,
            warmup: 3.0,
            progress: true,
            lite_viewers: false,
            lite_publishers: false,
        }
    }
}

/// One participant in the run.
struct Member {
    /// How receivers name this participant's streams.
    key: String,
    room: String,
    publishes: bool,
    /// The room's specialist: on the far node when the rooms span two.
    specialist: bool,
    /// What it received.
    received: peer::Received,
    /// What sends its media, if it publishes.
    sender: Option<Sender>,
    /// Packets sent: audio, then each video layer.
    sent: Arc<[AtomicU64; STREAMS]>,
    /// What to close at the end.
    link: Link,
}

/// Which participants are str0m sessions ([`lite`]), and their group.
struct Light<'a> {
    group: Option<&'a lite::LitePeers>,
    viewers: bool,
    publishers: bool,
}

impl<'a> Light<'a> {
    /// The group, if a participant who `publishes` (or not) is light.
    fn pick(&self, publishes: bool) -> Option<&'a lite::LitePeers> {
        let light = if publishes {
            self.publishers
        } else {
            self.viewers
        };
        self.group.filter(|_| light)
    }
}

/// What sends a publisher's clip.
#[derive(Clone)]
enum Sender {
    /// A webrtc-rs connection, and what was negotiated to send on it.
    Webrtc(peer::MediaSender, peer::Negotiated),
    /// A str0m session in the light group.
    Lite(lite::LiteSender),
}

impl Sender {
    /// Sends tick `n` of the clip; the video packets sent, per layer.
    async fn send_clip(&self, n: u32) -> [u32; clip::LAYERS] {
        match self {
            Sender::Webrtc(media, wire) => media.send_clip(n, wire).await,
            Sender::Lite(sender) => sender.send_clip(n),
        }
    }
}

/// A participant's connection to the server under load.
enum Link {
    Carecall(LoadPeer),
    Lite(lite::LitePeer),
    Janus(janus::JanusSession, Vec<peer::Media>),
}

/// What receives a Janus participant's subscription.
enum JanusViewer<'a> {
    /// A webrtc-rs connection of its own.
    Webrtc(peer::Media),
    /// A str0m session in the light group.
    Lite(&'a lite::LitePeers),
}

/// Packets received and their latencies, over all streams of all members.
#[derive(Default)]
struct Tally {
    /// Per member and stream: how many had arrived (to diff two tallies).
    lengths: Vec<Vec<((String, String), usize)>>,
}

fn tally(members: &[Member]) -> Tally {
    let lengths = members
        .iter()
        .map(|m| report::arrived(&m.received))
        .collect();
    Tally { lengths }
}

/// Runs `scenario` against `target` and reports what the SFU forwarded.
pub async fn run(target: &Target, scenario: Scenario, opts: &Options) -> Result<Report> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let run_id = format!("{}-{started}", std::process::id());
    let wanted = scenario.participants(&run_id);
    if wanted.len() > MAX_PARTICIPANTS || !(0.5..=MAX_SECONDS).contains(&opts.seconds) {
        bail!("a run is at most {MAX_PARTICIPANTS} participants and {MAX_SECONDS} s");
    }
    let rss_before = target.memory()?;
    let joining = Instant::now();
    let group = (opts.lite_viewers || opts.lite_publishers).then(lite::LitePeers::new);
    let lite = Light {
        group: group.as_ref(),
        viewers: opts.lite_viewers,
        publishers: opts.lite_publishers,
    };
    let members = match target.sfu {
        Sfu::Carecall => join_carecall(target, &wanted, scenario.view(), &lite).await?,
        Sfu::Janus => join_janus(target, &wanted, scenario.view(), &lite).await?,
    };
    let joined_in = joining.elapsed();

    // Publishers send every 20 ms until told to stop (or the bound passes).
    let stop = Arc::new(AtomicBool::new(false));
    let bound = Duration::from_secs_f64(opts.warmup + opts.seconds + 30.0);
    let mut senders = Vec::new();
    for m in &members {
        let Some(sender) = m.sender.clone() else {
            continue;
        };
        let (sent, stop) = (m.sent.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut every = tokio::time::interval(Duration::from_millis(20));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && started.elapsed() < bound {
                every.tick().await;
                let video = sender.send_clip(n).await;
                n += 1;
                sent[0].fetch_add(1, Ordering::Relaxed);
                for (layer, packets) in video.into_iter().enumerate() {
                    sent[1 + layer].fetch_add(packets.into(), Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(opts.warmup)).await;

    // The measured window.
    let before = tally(&members);
    let sent_before: Vec<[u64; STREAMS]> = members.iter().map(sent_by).collect();
    let cpu_before = target.cpu_seconds()?;
    let relay_before = relay::crossed(target).await?;
    let tool_before = proc::cpu_seconds(std::process::id())?;
    let window = Instant::now();
    let mut last = (tally(&members), window);
    while window.elapsed().as_secs_f64() < opts.seconds {
        let left = opts.seconds - window.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(left.clamp(0.0, 1.0))).await;
        if opts.progress {
            let now = tally(&members);
            let got = received_between(&last.0, &now);
            let cpu = target.cpu_seconds()? - cpu_before;
            eprintln!(
                "  {:>5.1}/{} s  {:>9.0} packets/s forwarded  server CPU {:>5.1}% since start",
                window.elapsed().as_secs_f64(),
                opts.seconds,
                got as f64 / last.1.elapsed().as_secs_f64(),
                100.0 * cpu / window.elapsed().as_secs_f64()
            );
            last = (now, Instant::now());
        }
    }
    let elapsed = window.elapsed().as_secs_f64();
    let cpu = target.cpu_seconds()? - cpu_before;
    let relayed = relay::crossed(target).await?.since(&relay_before);
    let tool_cpu = proc::cpu_seconds(std::process::id())? - tool_before;
    let after = tally(&members);
    let sent: Vec<[(u64, u64); STREAMS]> = members
        .iter()
        .zip(&sent_before)
        .map(|(m, b)| {
            let now = sent_by(m);
            std::array::from_fn(|k| (b[k], now[k]))
        })
        .collect();
    let rss_during = target.memory()?;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    // Packets still on their way at the window's end are late, not lost.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Which peers made a row is part of its name: str0m peers cost far
    // less than webrtc-rs ones, so rows that differ in them do not compare.
    let light = |publishes: bool| {
        lite.pick(publishes).is_some() && members.iter().any(|m| m.publishes == publishes)
    };
    let name = match (light(true), light(false)) {
        (true, true) => format!("{} (str0m peers)", scenario.name()),
        (true, false) => format!("{} (str0m publishers)", scenario.name()),
        (false, true) => format!("{} (str0m viewers)", scenario.name()),
        (false, false) => scenario.name(),
    };
    let report = report::measure(report::Measured {
        scenario: name,
        members: &members
            .iter()
            .map(|m| report::Participant {
                key: m.key.as_str(),
                room: m.room.as_str(),
                publishes: m.publishes,
                specialist: m.specialist,
                received: &m.received,
            })
            .collect::<Vec<_>>(),
        nodes: target.nodes().count(),
        relayed,
        before: &before.lengths,
        after: &after.lengths,
        sent: &sent,
        seconds: elapsed,
        cpu_seconds: cpu,
        tool_cpu_seconds: tool_cpu,
        rss_before,
        rss_during,
        joined_in,
    });
    for m in members {
        match m.link {
            Link::Carecall(peer) => peer.close().await,
            Link::Lite(viewer) => viewer.close(),
            Link::Janus(session, media) => {
                session.close();
                for c in media {
                    let _ = c.pc.close().await;
                }
            }
        }
    }
    Ok(report)
}

/// Joins everyone over carecall's signalling; each viewer shows the
/// publishers at the size of layer `view`, as a browser's tiles say.
async fn join_carecall(
    target: &Target,
    wanted: &[(String, Role, bool)],
    view: usize,
    lite: &Light<'_>,
) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(wanted.len());
    for (i, (room, role, publishes)) in wanted.iter().enumerate() {
        let ws = target.node_for(*role).ws_url();
        let token = target.token(room, *role, &format!("load {i}"))?;
        let specialist = *role == Role::Specialist;
        if let Some(group) = lite.pick(*publishes) {
            let (peer, key, sender) = match publishes {
                true => {
                    let (peer, key, sender) = group.join_publishing(&ws, &token).await?;
                    (peer, key, Some(Sender::Lite(sender)))
                }
                false => {
                    let (peer, key) = group.join(&ws, &token).await?;
                    (peer, key, None)
                }
            };
            if let Err(why) = peer.connected_within(Duration::from_secs(20)).await {
                bail!("participant {i}: media did not connect: {why}");
            }
            if !publishes && view != clip::TOP {
                for tile in tiles(&members, room, view) {
                    peer.send_raw(tile);
                }
            }
            members.push(Member {
                key,
                room: room.clone(),
                publishes: *publishes,
                specialist,
                received: peer.received.clone(),
                sender,
                sent: Arc::default(),
                link: Link::Lite(peer),
            });
            continue;
        }
        let mut peer = tokio::time::timeout(Duration::from_secs(20), async {
            match publishes {
                true => LoadPeer::join_simulcast(&ws, &token, i as u32).await,
                false => LoadPeer::watch(&ws, &token, i as u32).await,
            }
        })
        .await
        .with_context(|| format!("participant {i} did not join within 20 s"))?;
        if let Err(why) = peer.connected_within(Duration::from_secs(20)).await {
            bail!("participant {i}: media did not connect: {why}");
        }
        if !publishes && view != clip::TOP {
            for tile in tiles(&members, room, view) {
                peer.send_raw(tile);
            }
        }
        let sender = match publishes {
            true => Some(Sender::Webrtc(peer.sender(), peer.negotiated().await)),
            false => None,
        };
        members.push(Member {
            key: peer.participant.clone(),
            room: room.clone(),
            publishes: *publishes,
            specialist,
            received: peer.received.clone(),
            sender,
            sent: Arc::default(),
            link: Link::Carecall(peer),
        });
    }
    Ok(members)
}

/// The `view` messages a viewer in `room` sends to see its publishers at
/// layer `view`'s height, as a browser's tiles say.
fn tiles(members: &[Member], room: &str, view: usize) -> Vec<String> {
    let height = clip::clip().layers[view].height;
    members
        .iter()
        .filter(|m| m.publishes && m.room == room)
        .map(|m| {
            serde_json::json!({"type": "view", "participant": m.key, "height": height}).to_string()
        })
        .collect()
}

/// Joins everyone into Janus VideoRooms: each room created by its first
/// publisher, every publisher published, then every participant subscribed
/// to the others' feeds (one multistream connection each), asking for
/// simulcast layer `view`.
async fn join_janus(
    target: &Target,
    wanted: &[(String, Role, bool)],
    view: usize,
    lite: &Light<'_>,
) -> Result<Vec<Member>> {
    let mut rooms: Vec<&str> = Vec::new();
    let mut sessions = Vec::new();
    let mut feeds: Vec<Option<u64>> = Vec::new();
    let mut media: Vec<Vec<peer::Media>> = Vec::new();
    let mut light_senders: Vec<Option<(lite::LitePeer, lite::LiteSender)>> = Vec::new();
    // Unique across this tool's runs against one Janus, and apart from
    // another process's.
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let room_ids = (1 + std::process::id() as u64 % 1_000) * 1_000_000 + run * 1_000;
    for (i, (room, _, publishes)) in wanted.iter().enumerate() {
        let session = janus::JanusSession::open(&target.base_url).await?;
        let (n, first) = match rooms.iter().position(|r| r == room) {
            Some(n) => (n, false),
            None => {
                rooms.push(room);
                (rooms.len() - 1, true)
            }
        };
        let id = room_ids + n as u64;
        if first {
            let size = wanted.iter().filter(|w| &w.0 == room).count();
            janus::create_room(&session, id, size).await?;
        }
        let mut mine = Vec::new();
        let mut feed = None;
        let mut light = None;
        let (name, ip) = (format!("p{i}"), target.local_ip);
        match (publishes, lite.pick(true)) {
            (false, _) => {}
            (true, Some(group)) => {
                let (unstarted, offer) = group.offer_to_publish(&name, ip)?;
                let (id, answer) =
                    janus::publish_offer(&session, id, offer, &format!("load {i}")).await?;
                feed = Some(id);
                light = Some(group.start(unstarted, &answer)?);
            }
            (true, None) => {
                let m = peer::Media::new(&name, i as u32, Publish::Simulcast, None, ip).await;
                feed = Some(janus::publish(&session, id, &m, &format!("load {i}")).await?);
                mine.push(m);
            }
        }
        sessions.push((session, id));
        feeds.push(feed);
        media.push(mine);
        light_senders.push(light);
    }
    // Janus offers a feed to subscribers only once its publisher's media is up.
    for (i, (mine, light)) in media.iter_mut().zip(&light_senders).enumerate() {
        for m in mine.iter_mut() {
            if let Err(why) = m.connected_within(Duration::from_secs(20)).await {
                bail!("participant {i}: publishing to Janus did not connect: {why}");
            }
        }
        if let Some((peer, _)) = light {
            if let Err(why) = peer.connected_within(Duration::from_secs(20)).await {
                bail!("participant {i}: publishing to Janus did not connect: {why}");
            }
        }
    }
    let mut members = Vec::with_capacity(wanted.len());
    let joined = sessions.into_iter().zip(media).zip(light_senders);
    for (i, (((session, id), mut mine), light)) in joined.enumerate() {
        let (room, role, publishes) = &wanted[i];
        let others: Vec<(u64, String)> = wanted
            .iter()
            .enumerate()
            .filter(|(j, w)| *j != i && &w.0 == room)
            .filter_map(|(j, _)| Some((feeds[j]?, format!("p{j}"))))
            .collect();
        let received: peer::Received = if others.is_empty() {
            Arc::default()
        } else {
            let (name, ip) = (format!("p{i}"), target.local_ip);
            // A light publisher's subscription is light too.
            let viewer = match lite.pick(*publishes) {
                Some(lite) => JanusViewer::Lite(lite),
                None => {
                    let owners = Some(peer::Owners::default());
                    let m = peer::Media::new(&name, i as u32, Publish::Nothing, owners, ip).await;
                    JanusViewer::Webrtc(m)
                }
            };
            let owners = match &viewer {
                JanusViewer::Webrtc(m) => m.owners.clone().unwrap_or_default(),
                JanusViewer::Lite(_) => peer::Owners::default(),
            };
            // A feed whose media just came up may not be offered yet: retry.
            let mut tries = 0;
            let offered = loop {
                match janus::request_feeds(&session, id, &others, Some(&owners), view).await {
                    Ok(o) => break o,
                    Err(e) if tries < 19 && e.to_string().contains("No such feed") => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            match viewer {
                JanusViewer::Webrtc(m) => {
                    let answer = janus::answer_with(&m, &offered.offer).await?;
                    offered.start(&session, id, answer).await?;
                    let r = m.received.clone();
                    mine.push(m);
                    r
                }
                JanusViewer::Lite(lite) => {
                    let (viewer, answer) = lite.answer(&offered.offer, owners, ip)?;
                    offered.start(&session, id, answer).await?;
                    if let Err(why) = viewer.connected_within(Duration::from_secs(20)).await {
                        bail!("participant {i}: media with Janus did not connect: {why}");
                    }
                    viewer.received.clone()
                }
            }
        };
        for m in &mut mine {
            if let Err(why) = m.connected_within(Duration::from_secs(20)).await {
                bail!("participant {i}: media with Janus did not connect: {why}");
            }
        }
        let sender = match (mine.first().filter(|_| *publishes), light) {
            (_, Some((_, sender))) => Some(Sender::Lite(sender)),
            (Some(m), None) => Some(Sender::Webrtc(m.sender.clone(), m.negotiated().await)),
            (None, None) => None,
        };
        members.push(Member {
            key: format!("p{i}"),
            room: room.clone(),
            publishes: *publishes,
            specialist: *role == Role::Specialist,
            received,
            sender,
            sent: Arc::default(),
            link: Link::Janus(session, mine),
        });
    }
    Ok(members)
}

/// Audio and video layers' packets `m` has sent so far: also the counter
/// its next packet of each stream will carry.
fn sent_by(m: &Member) -> [u64; STREAMS] {
    std::array::from_fn(|k| m.sent[k].load(Ordering::Relaxed))
}

/// Packets that arrived between two tallies, over everything.
fn received_between(a: &Tally, b: &Tally) -> usize {
    let total = |t: &Tally| -> usize { t.lengths.iter().flatten().map(|(_, n)| n).sum() };
    total(b).saturating_sub(total(a))
}
