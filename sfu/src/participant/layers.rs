//! One participant as a viewer and as a camera: which layer of each video
//! it receives (tile size, bandwidth budget, hysteresis), how its link is
//! probed, and which of its own layers are worth publishing (dynacast).

use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::{MediaKind, Mid};

use super::{Participant, Signals, UNLIMITED};
use crate::bandwidth::AUDIO_RESERVE;
use crate::forward::{allocate, held_back, Demand, Layer, UP_HEADROOM};
use crate::id::ParticipantId;
use crate::signal::MediaSignal;
use crate::track::nominal_rate;

impl Participant {
    /// The best layer this participant, as a viewer, would take of
    /// `publisher`'s camera if every layer were sent.
    pub fn wish_for(&self, publisher: ParticipantId) -> Option<Layer> {
        self.subscriptions
            .iter()
            .filter(|s| s.origin == publisher && s.is_open_video())
            .filter_map(|s| s.wish)
            .max()
    }

    /// What this participant, as a viewer on another node than the camera,
    /// asks that node for: its wish, or the lowest layer while its budget
    /// fits none. A local camera's lowest layer always flows (dynacast keeps
    /// it); a far one's crosses only when asked, and without its packets
    /// this node cannot measure the layer a probe would resume the video on.
    pub fn far_wish_for(&self, publisher: ParticipantId) -> Option<Layer> {
        let watching =
            (self.subscriptions.iter()).any(|s| s.origin == publisher && s.is_open_video());
        watching.then(|| self.wish_for(publisher).unwrap_or(Layer::QUARTER))
    }

    /// Tells this participant's browser to stop encoding the simulcast layers
    /// above `ceiling` (the best any viewer would take), per [`PublishLimit`].
    pub fn limit_publishing(
        &mut self,
        now: Instant,
        ceiling: Option<Layer>,
        signals: &mut Signals,
    ) {
        if !self.publications.iter().any(|p| p.kind == MediaKind::Video) {
            return;
        }
        if let Some(highest) = self.publish_limit.update(now, ceiling) {
            tracing::info!(parent: &self.span, highest = %highest, "publishing layers up to");
            let highest = highest.rid();
            signals.push_back((self.id, MediaSignal::PublishLayers { highest }));
        }
    }

    /// Chooses the layer of every video subscription from this participant's
    /// bandwidth budget and tile sizes. `rates` holds each publication's layer
    /// bitrates. Adds to `keyframes_needed` a request for each layer newly
    /// switched to, and queues a signal when a track's video pauses or
    /// resumes.
    pub fn select_layers(
        &mut self,
        now: Instant,
        rates: &[(
            ParticipantId,
            Mid,
            [Option<u64>; crate::forward::LAYER_COUNT],
        )],
        signals: &mut Signals,
        keyframes_needed: &mut Vec<(ParticipantId, Mid, Layer)>,
    ) {
        let span = &self.span;
        if self.connected {
            self.downlink.connected(now);
        }
        let audio = self
            .subscriptions
            .iter()
            .filter(|s| s.kind == MediaKind::Audio)
            .count();
        let budget = self.downlink.video_budget(now, audio).unwrap_or(UNLIMITED);
        self.send_red = self.downlink.carries_redundant_audio(audio);
        let video: Vec<usize> = (0..self.subscriptions.len())
            .filter(|&i| self.subscriptions[i].is_open_video())
            .collect();
        let demands: Vec<Demand> = video
            .iter()
            .map(|&i| {
                let s = &self.subscriptions[i];
                let rates = rates
                    .iter()
                    .find(|(o, m, _)| *o == s.origin && *m == s.source_mid)
                    .map(|r| r.2)
                    .unwrap_or_default();
                let height = s.view_height.unwrap_or(Layer::FULL.nominal_height());
                Demand {
                    cap: Layer::for_view_height(height),
                    rates,
                    priority: u64::from(height),
                }
            })
            .collect();
        let mut fits = allocate(budget, &demands);
        let fits_up = allocate((budget as f64 / UP_HEADROOM) as u64, &demands);
        let sustained = self.downlink.sustained_video_budget(now, audio);
        let fits_sustained = allocate(sustained.unwrap_or(UNLIMITED), &demands);
        for (k, fit) in fits.iter_mut().enumerate() {
            if fit.is_none() && fits_sustained[k].is_some() {
                // Short only for a moment: hold the lowest layer, not a pause.
                *fit = demands[k].lowest();
            }
        }
        let all_sent: Vec<Demand> = demands
            .iter()
            .map(|d| d.as_if_all_sent(nominal_rate))
            .collect();
        let wishes = allocate(budget, &all_sent);
        for (k, &i) in video.iter().enumerate() {
            let sub = &mut self.subscriptions[i];
            sub.wish = wishes[k];
            if demands[k].rates.iter().all(Option::is_none) {
                // Nothing published yet (or the camera stopped): nothing to decide.
                continue;
            }
            let before = sub.selector.target();
            let was_paused = sub.selector.is_paused();
            let Some(after) = sub.selector.decide(now, &demands[k], fits[k], fits_up[k]) else {
                continue;
            };
            tracing::info!(
                parent: span, origin = %sub.origin,
                budget_kbps = (budget < UNLIMITED).then_some(budget / 1000),
                layers_kbps = ?demands[k].rates.map(|r| r.map(|r| r / 1000)),
                from = ?before.map(|l| l.rid()), to = ?after.map(|l| l.rid()),
                "video layer target"
            );
            if budget < UNLIMITED && after < before {
                // The link is short now: stop the bigger layer at once rather
                // than queue it until the smaller one's keyframe. The tile
                // keeps its last picture meanwhile.
                sub.forwarding = None;
            }
            let paused = match (before, after) {
                (Some(_), Some(_)) => {
                    self.adaptation.layer_switches += 1;
                    None
                }
                (Some(_), None) => {
                    self.adaptation.video_pauses += 1;
                    Some(true)
                }
                (None, Some(_)) if was_paused => {
                    self.adaptation.video_resumes += 1;
                    Some(false)
                }
                // The first choice: nothing was paused, nothing to tell.
                _ => None,
            };
            if let Some(paused) = paused {
                let participant = sub.origin;
                let signal = MediaSignal::VideoPaused {
                    participant,
                    paused,
                };
                signals.push_back((self.id, signal));
            }
            if let (Some(layer), true) = (after, self.connected) {
                if sub.forwarding != Some(layer) {
                    keyframes_needed.push((sub.origin, sub.source_mid, layer));
                }
            }
        }
        let targets: Vec<Option<Layer>> = video
            .iter()
            .map(|&i| self.subscriptions[i].selector.target())
            .collect();
        self.plan_probing(now, &demands, &fits, &targets, audio);
    }

    /// Tells str0m's estimator the rate the tiles would use in full, so it
    /// probes for it when that is above the estimate. While every video is
    /// paused, the rate that would bring them back (their lowest layers) is
    /// probed for instead: a smaller probe, and the step that matters.
    /// Probing goes on while a tile is [`held_back`] from its layer.
    fn plan_probing(
        &mut self,
        now: Instant,
        demands: &[Demand],
        fits: &[Option<Layer>],
        targets: &[Option<Layer>],
        audio: usize,
    ) {
        let present = demands.iter().any(|d| d.rates.iter().any(Option::is_some));
        let flowing = present && fits.iter().any(Option::is_some);
        if let Some(from) = self.downlink.video_back(now, present, flowing) {
            tracing::info!(parent: &self.span, from_kbps = from / 1000, "downlink estimate restored: video back after a gap with only sound to send");
            self.rtc.bwe().reset(Bitrate::bps(from));
        }
        if demands.is_empty() || !self.video_started {
            // Probing starts once video has flowed. Before, str0m would probe
            // with blank padding packets of at most 255 bytes, which a media
            // worker's millisecond timer cannot send fast enough: the probes
            // would under-measure the link and lower the estimate.
            return;
        }
        let all_paused = fits.iter().all(Option::is_none);
        // At the layers' nominal rates: known from the start, before every
        // layer has been seen and measured.
        let video: u64 = demands
            .iter()
            .map(|d| match all_paused {
                true => d.lowest().map_or(0, nominal_rate),
                false => nominal_rate(d.cap),
            })
            .sum();
        let held_back = held_back(demands, targets);
        // A step up asks for the headroom above the layers' rates: probing
        // only for the rates themselves left the estimate settled just short
        // of it (3.4 Mbit/s for two 720p tiles that needed 3.9).
        let video = (video as f64 * UP_HEADROOM) as u64;
        let wanted = video + AUDIO_RESERVE * audio as u64;
        if let Some(from) = self.downlink.restart(now, held_back) {
            tracing::info!(parent: &self.span, from_kbps = from / 1000, "downlink estimator restarted: clean link, estimate stuck");
            self.rtc.bwe().reset(Bitrate::bps(from));
            self.adaptation.estimator_restarts += 1;
        }
        if let Some(desired) = self.downlink.plan(now, wanted, held_back) {
            self.rtc
                .bwe()
                .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        }
    }

    /// Records the size at which this participant shows another's video.
    pub fn set_view(&mut self, origin: ParticipantId, height: u32) {
        self.views.set(origin, height);
        for s in &mut self.subscriptions {
            if s.origin == origin && s.kind == MediaKind::Video {
                s.view_height = Some(height);
            }
        }
    }
}
