//! The media plane's handle: [`MediaServer`] starts one worker thread per
//! core's worth of sockets and passes each command to the worker that owns
//! its room (rooms are placed by a hash of their id, so a room always lives
//! on the same worker). The workers' loop is in [`super::worker`].

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::oneshot;

use super::relay::{RelayCommand, RelayHandle, RelaySettings};
use super::tcp::bind_listeners;
use super::udp::bind_std;
use super::worker::run_worker;
use crate::downlink_test::DownlinkPlan;
use crate::error::SfuError;
use crate::id::{ParticipantId, RoomId};
use crate::recording::{RecordingDone, RecordingOptions};
use crate::sdp_limits::SdpLimits;
use crate::signal::MediaSignal;
use crate::stats::ParticipantStats;

/// Where and how the media plane listens.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Addresses announced to browsers as ICE host candidates; one socket each.
    pub announce: Vec<IpAddr>,
    /// UDP port of the first worker; worker `i` uses `port + i`. 0 picks free ports.
    pub port: u16,
    /// TCP port for ICE-TCP (passive candidates) of the first worker, the
    /// same way; `None` offers UDP only.
    pub tcp_port: Option<u16>,
    /// Number of media worker threads.
    pub workers: usize,
    /// Estimate each subscriber's downlink and choose layers by it (see
    /// [`crate::Room::set_bandwidth_estimation`]).
    pub estimate_bandwidth: bool,
    /// The embedded TURN server's relays, to name relayed participants'
    /// transport in statistics.
    pub relays: Option<crate::turn::RelayBook>,
    /// The QUIC endpoint that links this node to the hub's others, so a
    /// room can span them; `None` on a node that stands alone.
    pub relay: Option<RelaySettings>,
}

/// What signalling asks of the worker that owns a room.
pub(super) enum WorkerCommand {
    ReceiveOnly {
        room: RoomId,
        participant: ParticipantId,
    },
    Connect {
        room: RoomId,
        participant: ParticipantId,
        offer: String,
        signals: UnboundedSender<MediaSignal>,
    },
    Answer {
        room: RoomId,
        participant: ParticipantId,
        answer: String,
    },
    Candidate {
        room: RoomId,
        participant: ParticipantId,
        candidate: String,
    },
    Leave {
        room: RoomId,
        participant: ParticipantId,
    },
    View {
        room: RoomId,
        participant: ParticipantId,
        origin: ParticipantId,
        height: u32,
    },
    AnnounceRecording {
        room: RoomId,
        by: ParticipantId,
        since: Option<u64>,
    },
    AnnounceConsent {
        room: RoomId,
        by: ParticipantId,
        at: u64,
        info: String,
    },
    Stats {
        reply: oneshot::Sender<Vec<ParticipantStats>>,
    },
    StartRecording {
        room: RoomId,
        options: RecordingOptions,
        reply: oneshot::Sender<Result<RecordingDone, SfuError>>,
    },
    StopRecording {
        room: RoomId,
    },
    TestDownlink {
        room: RoomId,
        participant: ParticipantId,
        plan: DownlinkPlan,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Announce {
        room: RoomId,
        participant: ParticipantId,
        info: String,
    },
    /// About a room spanning other nodes (see `relay.rs`).
    Relay(RelayCommand),
}

struct WorkerHandle {
    commands: UnboundedSender<WorkerCommand>,
    addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
}

/// A handle to the running media plane. Cheap to clone; commands are queued to
/// the worker that owns the room.
#[derive(Clone)]
pub struct MediaServer {
    workers: Arc<Vec<WorkerHandle>>,
    relays: Option<crate::turn::RelayBook>,
    relay: Option<RelayHandle>,
}

impl MediaServer {
    /// Binds every worker's sockets and starts the worker threads.
    pub fn start(config: &MediaConfig) -> Result<MediaServer, SfuError> {
        let count = config.workers.max(1);
        let channels: Vec<_> = (0..count).map(|_| unbounded_channel()).collect();
        let senders: Vec<_> = channels.iter().map(|(tx, _)| tx.clone()).collect();
        let relay = match &config.relay {
            Some(settings) => Some(RelayHandle::start(settings, senders)?),
            None => None,
        };
        let mut workers = Vec::new();
        for (index, (tx, rx)) in channels.into_iter().enumerate() {
            let nth = |port: u16| match port {
                0 => 0,
                p => p.saturating_add(index as u16),
            };
            let bound = bind_std(&config.announce, nth(config.port))?;
            let listeners = match config.tcp_port {
                Some(p) => bind_listeners(&config.announce, nth(p))?,
                None => Vec::new(),
            };
            let addrs = bound.iter().map(|(_, a)| *a).collect();
            let tcp_addrs = listeners.iter().map(|(_, a)| *a).collect();
            let estimate_bandwidth = config.estimate_bandwidth;
            let worker_relay = relay.clone();
            std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || {
                    run_worker(
                        index,
                        bound,
                        listeners,
                        rx,
                        estimate_bandwidth,
                        worker_relay,
                    )
                })
                .map_err(|_| SfuError::WorkerGone)?;
            workers.push(WorkerHandle {
                commands: tx,
                addrs,
                tcp_addrs,
            });
        }
        Ok(MediaServer {
            workers: Arc::new(workers),
            relays: config.relays.clone(),
            relay,
        })
    }

    /// What crossed this node's relay so far, if it has one.
    pub fn relay_counts(&self) -> Option<super::relay::RelayCounts> {
        self.relay.as_ref().map(RelayHandle::counts)
    }

    /// Where other nodes reach this node's relay (UDP, QUIC), if it has one.
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay.as_ref().map(RelayHandle::local_addr)
    }

    /// Spans `room` to the node whose relay is at `addr` (its certificate
    /// naming `name`): the link is made if there is none, and from then on
    /// the participants here and there see and hear each other, each
    /// packet crossing once.
    pub async fn span(&self, room: RoomId, addr: SocketAddr, name: &str) -> Result<(), SfuError> {
        let relay = self
            .relay
            .as_ref()
            .ok_or_else(|| SfuError::Relay("this node has no relay configured".into()))?;
        let link = relay.link_to(addr, name).await?;
        let (reply, answer) = oneshot::channel();
        let command = RelayCommand::SpanTo {
            room: room.clone(),
            link,
            reply,
        };
        self.send(&room, WorkerCommand::Relay(command))?;
        answer.await.map_err(|_| SfuError::WorkerGone)?
    }

    /// Whether every media worker thread is still running (a worker only
    /// stops when its thread died).
    pub fn is_alive(&self) -> bool {
        self.workers.iter().all(|w| !w.commands.is_closed())
    }

    /// Every UDP address the media plane listens on, across workers.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().flat_map(|w| w.addrs.clone()).collect()
    }

    /// Every TCP address (ICE-TCP) the media plane listens on.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.workers
            .iter()
            .flat_map(|w| w.tcp_addrs.clone())
            .collect()
    }

    /// Joins a participant to a room with its browser's first offer. The answer,
    /// and every later signal for this participant, arrive on `signals`.
    pub fn connect(
        &self,
        room: RoomId,
        participant: ParticipantId,
        offer: String,
        signals: UnboundedSender<MediaSignal>,
    ) -> Result<(), SfuError> {
        SdpLimits::CALL.check(participant, &offer)?;
        self.send(
            &room.clone(),
            WorkerCommand::Connect {
                room,
                participant,
                offer,
                signals,
            },
        )
    }

    /// Hands over a participant's answer to the SFU's last offer.
    pub fn answer(
        &self,
        room: RoomId,
        participant: ParticipantId,
        answer: String,
    ) -> Result<(), SfuError> {
        SdpLimits::CALL.check(participant, &answer)?;
        self.send(
            &room.clone(),
            WorkerCommand::Answer {
                room,
                participant,
                answer,
            },
        )
    }

    /// Hands over a trickled ICE candidate line from a participant's browser.
    pub fn remote_candidate(
        &self,
        room: RoomId,
        participant: ParticipantId,
        candidate: String,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::Candidate {
                room,
                participant,
                candidate,
            },
        )
    }

    /// Marks a participant who has not connected yet as one who may only
    /// receive (an observer): nothing it offers to send is published.
    pub fn receive_only(&self, room: RoomId, participant: ParticipantId) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::ReceiveOnly { room, participant },
        )
    }

    /// Describes a participant to the other nodes its room spans (see
    /// [`crate::Room::announce`]); `info` is signalling's own text.
    pub fn announce(
        &self,
        room: RoomId,
        participant: ParticipantId,
        info: String,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::Announce {
                room,
                participant,
                info,
            },
        )
    }

    /// Tells the other nodes `room` spans that `by` started recording it
    /// here at `since` (Unix seconds), or that it stopped (`None`), so that
    /// everyone in the call is told, wherever they joined (see
    /// [`crate::Room::announce_recording`]). A room no longer here has
    /// nothing to tell: its links closed with it.
    pub fn announce_recording(
        &self,
        room: RoomId,
        by: ParticipantId,
        since: Option<u64>,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::AnnounceRecording { room, by, since },
        )
    }

    /// Tells the other nodes `room` spans the consent to record clinician
    /// `by` noted here at `at` (Unix seconds; `info`: signalling's own
    /// text), so that everyone in the call sees it (see
    /// [`crate::Room::announce_consent`]).
    pub fn announce_consent(
        &self,
        room: RoomId,
        by: ParticipantId,
        at: u64,
        info: String,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::AnnounceConsent { room, by, at, info },
        )
    }

    /// Removes a participant from a room.
    pub fn leave(&self, room: RoomId, participant: ParticipantId) -> Result<(), SfuError> {
        self.send(&room.clone(), WorkerCommand::Leave { room, participant })
    }

    /// Records the height, in device pixels, at which `participant` shows
    /// `origin`'s video, so it is sent a layer that fits the tile.
    pub fn set_view(
        &self,
        room: RoomId,
        participant: ParticipantId,
        origin: ParticipantId,
        height: u32,
    ) -> Result<(), SfuError> {
        self.send(
            &room.clone(),
            WorkerCommand::View {
                room,
                participant,
                origin,
                height,
            },
        )
    }

    /// Every participant's media statistics, from every worker. A worker
    /// answers between packets, so this waits at most for one pass of its
    /// loop; a worker that has stopped is skipped.
    pub async fn stats(&self) -> Vec<ParticipantStats> {
        let mut replies = Vec::new();
        for w in self.workers.iter() {
            let (reply, answer) = oneshot::channel();
            if w.commands.send(WorkerCommand::Stats { reply }).is_ok() {
                replies.push(answer);
            }
        }
        let mut all = Vec::new();
        for answer in replies {
            all.extend(answer.await.unwrap_or_default());
        }
        if let Some(book) = &self.relays {
            for s in &mut all {
                if let Some(t) = s.remote.and_then(|r| book.lookup(r)) {
                    s.transport = Some(t.relay_name());
                }
            }
        }
        all
    }

    /// Starts recording a room that has participants. The returned receiver
    /// resolves with the finished file once the recording is stopped or
    /// everyone has left.
    pub async fn start_recording(
        &self,
        room: RoomId,
        options: RecordingOptions,
    ) -> Result<RecordingDone, SfuError> {
        let (reply, answer) = oneshot::channel();
        self.send(
            &room.clone(),
            WorkerCommand::StartRecording {
                room,
                options,
                reply,
            },
        )?;
        answer.await.map_err(|_| SfuError::WorkerGone)?
    }

    /// Starts the connectivity check's download test to `participant`: RTP
    /// at the plan's pace on the video m-line its browser offered to
    /// receive on, never repaired, so the browser counts the network's loss.
    pub async fn test_downlink(
        &self,
        room: RoomId,
        participant: ParticipantId,
        plan: DownlinkPlan,
    ) -> Result<(), SfuError> {
        let (reply, answer) = oneshot::channel();
        self.send(
            &room.clone(),
            WorkerCommand::TestDownlink {
                room,
                participant,
                plan,
                reply,
            },
        )?;
        answer.await.map_err(|_| SfuError::WorkerGone)?
    }

    /// Stops a room's recording, if one runs.
    pub fn stop_recording(&self, room: RoomId) -> Result<(), SfuError> {
        self.send(&room.clone(), WorkerCommand::StopRecording { room })
    }

    fn send(&self, room: &RoomId, cmd: WorkerCommand) -> Result<(), SfuError> {
        let index = worker_for(room, self.workers.len());
        self.workers[index]
            .commands
            .send(cmd)
            .map_err(|_| SfuError::WorkerGone)
    }
}

/// The worker that owns `room`, of `workers`: a hash of its name, so every
/// command and relayed packet for a room reaches the same worker.
pub(super) fn worker_for(room: &RoomId, workers: usize) -> usize {
    let mut h = DefaultHasher::new();
    room.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}
