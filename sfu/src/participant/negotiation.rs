//! Offers and answers: the browser makes the first offer (its camera and
//! microphone); after that the SFU is the only side that offers, adding and
//! stopping other participants' tracks. One offer at a time: changes wanted
//! while an offer is out wait for its answer.

use str0m::change::{DirectApi, SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::rtp::Ssrc;
use str0m::Candidate;

use super::{Participant, Signals};
use crate::error::SfuError;
use crate::forward::{RESEND_PACKETS, RESEND_RATIO_CAP, SHORTEST_WINDOW};
use crate::id::ParticipantId;
use crate::signal::MediaSignal;
use crate::track::SubscriptionState;

#[derive(Debug)]
pub(super) enum Negotiation {
    Stable,
    AwaitingAnswer(SdpPendingOffer),
}

/// Trickled ICE candidates one session takes at most: str0m keeps and
/// checks every one, so without a bound a client could make the worker's
/// connectivity checks as slow as it liked. A browser sends a handful per
/// network interface and ICE restart.
pub(crate) const MAX_REMOTE_CANDIDATES: usize = 256;

impl Participant {
    /// Accepts an offer from the browser and returns the SDP answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp {
            participant: self.id,
            reason: e.to_string(),
        })?;
        let ufrag_before = self.rtc.direct_api().local_ice_credentials().ufrag;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Negotiation {
                participant: self.id,
                reason: e.to_string(),
            })?;
        // New credentials in a later offer: the browser restarted ICE (its
        // address changed, or its path was lost).
        if self.rtc.direct_api().local_ice_credentials().ufrag != ufrag_before {
            tracing::info!(parent: &self.span, "ICE restart");
            self.counters.on_ice_restart();
        }
        // Accepting an offer invalidates our own outstanding one: redo its changes.
        self.negotiation = Negotiation::Stable;
        self.revert_negotiating();
        Ok(answer.to_sdp_string())
    }

    fn revert_negotiating(&mut self) {
        for sub in &mut self.subscriptions {
            match sub.state {
                SubscriptionState::Negotiating(_) => sub.state = SubscriptionState::ToOpen,
                SubscriptionState::NegotiatingStop(m) => sub.state = SubscriptionState::ToStop(m),
                _ => {}
            }
        }
    }

    /// Accepts the browser's answer to our last offer. Subscriptions it opens
    /// get their layer (and keyframe) when the room next chooses layers.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), SfuError> {
        let span = &self.span;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| SfuError::BadSdp {
            participant: self.id,
            reason: e.to_string(),
        })?;
        let Negotiation::AwaitingAnswer(pending) =
            std::mem::replace(&mut self.negotiation, Negotiation::Stable)
        else {
            return Err(SfuError::Negotiation {
                participant: self.id,
                reason: "an answer arrived but no offer was outstanding".into(),
            });
        };
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is void: put its changes back so the next offer redoes them.
            self.revert_negotiating();
            return Err(SfuError::Negotiation {
                participant: self.id,
                reason: e.to_string(),
            });
        }
        tracing::debug!(parent: span, connected = self.connected, "answer accepted");
        let mut direct = self.rtc.direct_api();
        for sub in &mut self.subscriptions {
            if let SubscriptionState::Negotiating(mid) = sub.state {
                match open_send_stream(&mut direct, mid, sub.kind) {
                    Some(ssrc) => sub.open(mid, ssrc),
                    None => {
                        tracing::warn!(parent: span, %mid, "no send stream after answer");
                        sub.state = SubscriptionState::ToOpen;
                    }
                }
            }
        }
        self.subscriptions
            .retain(|s| !matches!(s.state, SubscriptionState::NegotiatingStop(_)));
        Ok(())
    }

    /// Adds a trickled ICE candidate from the browser.
    pub fn add_remote_candidate(&mut self, candidate: &str) -> Result<(), SfuError> {
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            return Err(SfuError::TooManyCandidates {
                participant: self.id,
                limit: MAX_REMOTE_CANDIDATES,
            });
        }
        self.remote_candidates += 1;
        let line = candidate.strip_prefix("a=").unwrap_or(candidate);
        let c = Candidate::from_sdp_string(line).map_err(|e| SfuError::Negotiation {
            participant: self.id,
            reason: format!("bad ICE candidate: {e}"),
        })?;
        self.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Adopts the m-lines the browser offered to receive on (it pre-creates one
    /// audio and one video slot per participant already in the call), so waiting
    /// subscriptions use them at once: no renegotiation round trip before the
    /// first frame. `offer` is the browser's offer just accepted.
    pub fn adopt_receive_slots(&mut self, offer: &str, signals: &mut Signals) {
        for line in offer.lines() {
            let Some(mid) = line.trim().strip_prefix("a=mid:") else {
                continue;
            };
            let mid = Mid::from(mid);
            let Some(media) = self.rtc.media(mid) else {
                continue;
            };
            if media.direction() != Direction::SendOnly {
                continue;
            }
            let kind = media.kind();
            let Some(sub) = self
                .subscriptions
                .iter_mut()
                .find(|s| s.kind == kind && s.state == SubscriptionState::ToOpen)
            else {
                continue;
            };
            let Some(ssrc) = open_send_stream(&mut self.rtc.direct_api(), mid, kind) else {
                continue;
            };
            sub.open(mid, ssrc);
            signals.push_back(track_signal(self.id, mid, sub.origin));
        }
    }

    pub(super) fn negotiate_if_needed(&mut self, signals: &mut Signals) -> Option<String> {
        if !matches!(self.negotiation, Negotiation::Stable) {
            return None;
        }
        let wanted = self.subscriptions.iter().any(|s| {
            matches!(
                s.state,
                SubscriptionState::ToOpen | SubscriptionState::ToStop(_)
            )
        });
        if !wanted {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for sub in &mut self.subscriptions {
            match sub.state {
                SubscriptionState::ToOpen => {
                    let stream_id = sub.origin.to_string();
                    let track_id = format!("{}-{}", sub.origin, sub.source_mid);
                    let mid = change.add_media(
                        sub.kind,
                        Direction::SendOnly,
                        Some(stream_id),
                        Some(track_id),
                        None,
                    );
                    sub.state = SubscriptionState::Negotiating(mid);
                    signals.push_back(track_signal(self.id, mid, sub.origin));
                }
                SubscriptionState::ToStop(mid) => {
                    change.stop_media(mid);
                    sub.state = SubscriptionState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        tracing::debug!(parent: &self.span, "offer sent");
        self.negotiation = Negotiation::AwaitingAnswer(pending);
        Some(offer.to_sdp_string())
    }
}

/// The SSRC of the send stream negotiated on `mid`, a video one keeping
/// [`SHORTEST_WINDOW`] for resending until its first keyframe sets the
/// window ([`resend_window`](crate::forward::resend_window)).
fn open_send_stream(direct: &mut DirectApi<'_>, mid: Mid, kind: MediaKind) -> Option<Ssrc> {
    let stream = direct.stream_tx_by_mid(mid, None)?;
    if kind == MediaKind::Video {
        stream.set_rtx_cache(RESEND_PACKETS, SHORTEST_WINDOW, RESEND_RATIO_CAP);
    }
    Some(stream.ssrc())
}

/// Tells `to`'s browser that m-line `mid` carries `origin`'s track; queued
/// before the SDP that uses the mid.
fn track_signal(
    to: ParticipantId,
    mid: Mid,
    origin: ParticipantId,
) -> (ParticipantId, MediaSignal) {
    (
        to,
        MediaSignal::Track {
            mid: mid.to_string(),
            participant: origin,
        },
    )
}
