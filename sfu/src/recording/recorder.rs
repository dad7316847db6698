//! The recorder: one thread per recording, fed by the room's tap. It rebuilds
//! video frames, places every frame on the recording's timeline, mixes the
//! audio, and writes the WebM file. Nothing here runs on the media worker.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use str0m::media::Mid;

use super::mix::{AudioMixer, MixedFrame};
use super::tap::TapPacket;
use super::vp8::Vp8Assembler;
use super::webm::{RecordingSink, TrackKind, WebmWriter};
use crate::codec::red_primary;
use crate::forward::Layer;
use crate::id::ParticipantId;

/// How often the recorder wakes without packets (to finish waiting frames).
const TICK: Duration = Duration::from_millis(50);

/// How often one camera's keyframe may be asked for.
const WISH_INTERVAL: Duration = Duration::from_secs(1);

/// A stream's place on the timeline: its first packet's arrival, and its
/// RTP time then. Later packets are placed by RTP time, so network jitter
/// does not move them; a jump of more than [`REANCHOR_MS`] (a restarted
/// encoder) anchors again.
#[derive(Clone, Copy)]
struct Anchor {
    at_ms: u64,
    rtp: u64,
}

const REANCHOR_MS: i64 = 2000;

fn place(anchor: &mut Option<Anchor>, arrival_ms: u64, rtp: u64, clock_khz: u64) -> u64 {
    let by_rtp = anchor.and_then(|a| {
        let ms = a.at_ms as i64 + (rtp as i64 - a.rtp as i64) / clock_khz as i64;
        (ms >= 0 && (ms - arrival_ms as i64).abs() < REANCHOR_MS).then_some(ms as u64)
    });
    by_rtp.unwrap_or_else(|| {
        *anchor = Some(Anchor {
            at_ms: arrival_ms,
            rtp,
        });
        arrival_ms
    })
}

struct AudioTrack {
    track: usize,
    anchor: Option<Anchor>,
    /// Sequence numbers lately written: a duplicate (a retransmission that
    /// crossed the original) is written and mixed once.
    recent: std::collections::VecDeque<u64>,
}

/// How many audio sequence numbers are remembered for de-duplication.
const RECENT_AUDIO: usize = 64;

struct VideoTrack {
    track: usize,
    layer: Layer,
    assembler: Vp8Assembler,
    anchor: Option<Anchor>,
    last_wish: Option<Instant>,
}

/// Who a track belongs to, for the recording's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// The participant, or `None` for the mixed consultation audio.
    pub participant: Option<ParticipantId>,
    /// `"video"`, `"audio"` or `"mixed audio"`.
    pub kind: &'static str,
}

pub(crate) struct Recorder<S: RecordingSink> {
    t0: Instant,
    writer: WebmWriter<S>,
    mixer: AudioMixer,
    mixed_track: usize,
    audio: HashMap<ParticipantId, AudioTrack>,
    video: HashMap<(ParticipantId, Mid), VideoTrack>,
    wishes: Sender<(ParticipantId, Mid)>,
    tracks: Vec<TrackInfo>,
    mixed: Vec<MixedFrame>,
}

impl<S: RecordingSink> Recorder<S> {
    pub(crate) fn new(
        t0: Instant,
        writer: WebmWriter<S>,
        mixer: AudioMixer,
        wishes: Sender<(ParticipantId, Mid)>,
    ) -> Self {
        let mut writer = writer;
        let mixed_track = writer.add_track(
            "consultation (mixed)",
            TrackKind::Audio {
                channels: 1,
                pre_skip: mixer.pre_skip(),
            },
        );
        Recorder {
            t0,
            writer,
            mixer,
            mixed_track,
            audio: HashMap::new(),
            video: HashMap::new(),
            wishes,
            tracks: vec![TrackInfo {
                participant: None,
                kind: "mixed audio",
            }],
            mixed: Vec::new(),
        }
    }

    fn ms_since_start(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_millis() as u64
    }

    pub(crate) fn push(&mut self, p: TapPacket) -> std::io::Result<()> {
        let arrival_ms = self.ms_since_start(p.arrival);
        if p.video {
            self.push_video(p)?;
        } else {
            self.push_audio(p, arrival_ms)?;
        }
        self.mixer.poll(arrival_ms * 48, &mut self.mixed);
        self.write_mixed()
    }

    fn push_audio(&mut self, p: TapPacket, arrival_ms: u64) -> std::io::Result<()> {
        let opus = if p.red {
            match red_primary(&p.payload) {
                Some((_, at)) => &p.payload[at..],
                None => return Ok(()),
            }
        } else {
            &p.payload[..]
        };
        if opus.is_empty() {
            return Ok(());
        }
        let audio = match self.audio.get_mut(&p.origin) {
            Some(a) => a,
            None => {
                let track = self.writer.add_track(
                    &format!("participant {} audio", p.origin),
                    TrackKind::Audio {
                        channels: 1,
                        pre_skip: 0,
                    },
                );
                self.tracks.push(TrackInfo {
                    participant: Some(p.origin),
                    kind: "audio",
                });
                self.audio.entry(p.origin).or_insert(AudioTrack {
                    track,
                    anchor: None,
                    recent: std::collections::VecDeque::with_capacity(RECENT_AUDIO),
                })
            }
        };
        if audio.recent.contains(&p.seq) {
            return Ok(());
        }
        if audio.recent.len() == RECENT_AUDIO {
            audio.recent.pop_front();
        }
        audio.recent.push_back(p.seq);
        let at_ms = place(&mut audio.anchor, arrival_ms, p.rtp_time, 48);
        let anchor = audio.anchor.expect("placed");
        let at_samples = anchor.at_ms * 48 + p.rtp_time.saturating_sub(anchor.rtp);
        self.mixer.push(p.origin, p.seq, at_samples, opus);
        self.writer.push(audio.track, at_ms, true, opus.to_vec())
    }

    fn push_video(&mut self, p: TapPacket) -> std::io::Result<()> {
        let key = (p.origin, p.mid);
        if !self.video.contains_key(&key) {
            let track = self.writer.add_track(
                &format!("participant {} video", p.origin),
                TrackKind::Video {
                    width: 0,
                    height: 0,
                },
            );
            self.tracks.push(TrackInfo {
                participant: Some(p.origin),
                kind: "video",
            });
            self.video.insert(
                key,
                VideoTrack {
                    track,
                    layer: p.layer,
                    assembler: Vp8Assembler::new(),
                    anchor: None,
                    last_wish: None,
                },
            );
        }
        let video = self.video.get_mut(&key).expect("inserted above");
        if video.layer != p.layer {
            // The tap switched layers at a keyframe: a new stream of the same camera.
            video.layer = p.layer;
            video.assembler = Vp8Assembler::new();
            video.anchor = None;
        }
        video
            .assembler
            .push(p.seq, p.rtp_time, p.marker, p.arrival, p.payload);
        self.drain_video(key, p.arrival)
    }

    fn drain_video(&mut self, key: (ParticipantId, Mid), now: Instant) -> std::io::Result<()> {
        let t0 = self.t0;
        let Some(video) = self.video.get_mut(&key) else {
            return Ok(());
        };
        while let Some(frame) = video.assembler.pop(now) {
            let arrival_ms = frame.arrival.saturating_duration_since(t0).as_millis() as u64;
            let at_ms = place(&mut video.anchor, arrival_ms, frame.rtp_time, 90);
            if let Some((w, h)) = frame.size {
                self.writer.saw_video_size(video.track, w, h);
            }
            self.writer
                .push(video.track, at_ms, frame.keyframe, frame.data)?;
        }
        if video.assembler.wants_keyframe()
            && video
                .last_wish
                .is_none_or(|t| now.duration_since(t) >= WISH_INTERVAL)
        {
            video.last_wish = Some(now);
            let _ = self.wishes.send(key);
        }
        Ok(())
    }

    /// Called when no packet came for a while: frames whose missing packets
    /// will not come are given up, and the mix moves on.
    pub(crate) fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        let keys: Vec<_> = self.video.keys().copied().collect();
        for key in keys {
            self.drain_video(key, now)?;
        }
        let now_ms = self.ms_since_start(now);
        self.mixer.poll(now_ms * 48, &mut self.mixed);
        self.write_mixed()
    }

    fn write_mixed(&mut self) -> std::io::Result<()> {
        for frame in self.mixed.drain(..) {
            self.writer
                .push(self.mixed_track, frame.at / 48, true, frame.packet)?;
        }
        Ok(())
    }

    /// Ends the file; returns its duration in milliseconds and its tracks.
    pub(crate) fn finish(mut self) -> std::io::Result<(u64, Vec<TrackInfo>)> {
        self.tick(Instant::now())?;
        self.mixer.flush(&mut self.mixed);
        self.write_mixed()?;
        Ok((self.writer.finish()?, self.tracks))
    }

    /// Feeds packets until the tap is dropped (recording stopped, or the
    /// room ended), then finishes the file.
    pub(crate) fn run(
        mut self,
        packets: Receiver<TapPacket>,
    ) -> std::io::Result<(u64, Vec<TrackInfo>)> {
        let mut last_tick = Instant::now();
        loop {
            match packets.recv_timeout(TICK) {
                Ok(p) => self.push(p)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick(last_tick)?;
            }
        }
    }
}
