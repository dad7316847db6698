//! What a room spanning nodes tells the others of the call as a whole: that
//! it is recorded on one node (the recording takes everyone's media,
//! relayed included), and the consent to record a clinician noted on one.
//! Browsers on every node are told as those on that node are.

use std::sync::Arc;

use super::Room;
use crate::cascade::{Control, LinkId};
use crate::id::ParticipantId;
use crate::signal::MediaSignal;

/// The call's consent to record as last noted, here or on another node.
#[derive(Debug, Clone)]
pub(super) struct NotedConsent {
    /// The link it came over; `None`: noted here.
    from: Option<LinkId>,
    /// The clinician who noted it.
    by: ParticipantId,
    /// When, Unix seconds.
    at: u64,
    /// Signalling's entry.
    info: Arc<str>,
}

impl NotedConsent {
    /// Whether an entry noted by `by` at `at` is newer than this one (the
    /// clinician's number settles a tie the same way on every node).
    fn older_than(&self, at: u64, by: ParticipantId) -> bool {
        (self.at, self.by) < (at, by)
    }
}

impl Room {
    /// Tells the nodes the room spans (and those it spans later) that `by`
    /// started recording the call here at `since` (Unix seconds), or that
    /// it stopped (`None`): their browsers show it as this node's do.
    pub fn announce_recording(&mut self, by: ParticipantId, since: Option<u64>) {
        self.local_recording = since.map(|since| (by, since));
        self.relay
            .tell_all(Control::Recording { origin: by, since });
    }

    /// Tells the nodes the room spans (and those it spans later) the
    /// consent to record that clinician `by` noted here at `at` (Unix
    /// seconds): signalling's own text, passed to their browsers as it is.
    pub fn announce_consent(&mut self, by: ParticipantId, at: u64, info: &str) {
        let info: Arc<str> = info.into();
        let noted = NotedConsent {
            from: None,
            by,
            at,
            info: info.clone(),
        };
        self.consent = Some(noted);
        self.relay.tell_all(Control::Consent {
            origin: by,
            at,
            info,
        });
    }

    /// Tells a newly spanned `link` of the call's recordings and its
    /// consent (the newest noted), here or on other nodes this one links.
    pub(super) fn tell_call_state(&mut self, link: LinkId) {
        let far = (self.relay.recordings.iter())
            .filter(|r| r.link != link)
            .map(|r| (r.origin, r.since));
        let mut told: Vec<Control> = (self.local_recording.into_iter().chain(far))
            .map(|(origin, since)| Control::Recording {
                origin,
                since: Some(since),
            })
            .collect();
        if let Some(c) = self.consent.as_ref().filter(|c| c.from != Some(link)) {
            told.push(Control::Consent {
                origin: c.by,
                at: c.at,
                info: c.info.clone(),
            });
        }
        for control in told {
            self.relay.tell(link, control);
        }
    }

    /// Tells a participant joining here of recordings on other nodes and of
    /// the consent noted there.
    pub(super) fn tell_call_state_to(&mut self, id: ParticipantId) {
        for r in &self.relay.recordings {
            let signal = MediaSignal::RemoteRecording {
                by: r.origin,
                since: Some(r.since),
            };
            self.signals.push_back((id, signal));
        }
        // One noted here, signalling tells itself.
        if let Some(c) = self.consent.as_ref().filter(|c| c.from.is_some()) {
            let signal = MediaSignal::RemoteConsent {
                info: c.info.clone(),
            };
            self.signals.push_back((id, signal));
        }
    }

    /// A far node's word on the call (`Control::Recording` or
    /// `Control::Consent`), about someone it may speak for: browsers here
    /// are told, and the other nodes this one links.
    pub(super) fn take_call_state(&mut self, link: LinkId, control: Control) {
        let changed = match &control {
            Control::Recording { origin, since } => {
                let changed = self.relay.set_recording(link, *origin, *since);
                if changed {
                    tracing::info!(room = %self.id, %origin, link = link.0, on = since.is_some(), "recording on another node");
                    self.tell_everyone(MediaSignal::RemoteRecording {
                        by: *origin,
                        since: *since,
                    });
                }
                changed
            }
            Control::Consent { origin, at, info } => {
                // An entry older than the one known (heard again, or late
                // across a relinked node) changes nothing.
                let newer = (self.consent.as_ref()).is_none_or(|c| c.older_than(*at, *origin));
                if newer {
                    tracing::info!(room = %self.id, %origin, link = link.0, "consent to record noted on another node");
                    self.consent = Some(NotedConsent {
                        from: Some(link),
                        by: *origin,
                        at: *at,
                        info: info.clone(),
                    });
                    self.tell_everyone(MediaSignal::RemoteConsent { info: info.clone() });
                }
                newer
            }
            _ => false,
        };
        if changed {
            self.relay.tell_others(link, control);
        }
    }

    /// The link to another node is gone: a recording there no longer takes
    /// anyone here (the consent noted there stands: it is the call's).
    pub(super) fn end_far_recordings(&mut self, link: LinkId) {
        let ended: Vec<ParticipantId> = (self.relay.recordings.iter())
            .filter(|r| r.link == link)
            .map(|r| r.origin)
            .collect();
        for origin in ended {
            self.relay.set_recording(link, origin, None);
            self.tell_everyone(MediaSignal::RemoteRecording {
                by: origin,
                since: None,
            });
            self.relay.tell_all(Control::Recording {
                origin,
                since: None,
            });
        }
    }
}
