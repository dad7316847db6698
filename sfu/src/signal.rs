//! What the media plane tells one participant's signalling session.

/// A message for the browser (or for signalling's bookkeeping) about one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaSignal {
    /// The SDP answer to the participant's offer.
    Answer(String),
    /// A new offer: tracks of others were added or removed.
    Offer(String),
    /// The m-line `mid` carries `participant`'s track. Sent before the SDP that
    /// uses it, so the browser can put the track in the right tile.
    Track {
        /// The m-line's mid.
        mid: String,
        /// Whose track it carries.
        participant: crate::id::ParticipantId,
    },
    /// Video from `participant` stopped (`paused`) because the link cannot
    /// carry even its lowest layer, keeping the sound clear; or it came back.
    VideoPaused {
        /// Whose video.
        participant: crate::id::ParticipantId,
        /// True when paused, false when it resumes.
        paused: bool,
    },
    /// Send the camera's simulcast layers up to this one (its rid: `q`, `h`
    /// or `f`) and pause those above: nobody would watch them.
    PublishLayers {
        /// The highest layer to keep sending.
        highest: &'static str,
    },
    /// A participant on another node of a room spanning nodes is in the
    /// call (or changed): `info` is its signalling's description, as sent.
    RemotePeer {
        /// Who.
        participant: crate::id::ParticipantId,
        /// Their description (signalling's own format).
        info: std::sync::Arc<str>,
    },
    /// That participant left, or their node's link went.
    RemoteLeft {
        /// Who.
        participant: crate::id::ParticipantId,
    },
    /// The call is being recorded on another node of a room spanning
    /// nodes, which takes everyone's media, or that recording stopped
    /// (`since: None`; also when that node's link went).
    RemoteRecording {
        /// The clinician who started it.
        by: crate::id::ParticipantId,
        /// When it started, Unix seconds; `None`: it stopped.
        since: Option<u64>,
    },
    /// A clinician on another node of a room spanning nodes noted the
    /// call's consent to record: `info` is that node's signalling's entry.
    RemoteConsent {
        /// The entry (signalling's own format).
        info: std::sync::Arc<str>,
    },
    /// ICE and DTLS are up; media can flow.
    Connected,
    /// ICE lost the path; media may come back (e.g. a Wi-Fi roam).
    IceDisconnected,
    /// The WebRTC session ended and the participant was removed from the room.
    Closed(String),
    /// A command about this participant failed; the message says why.
    Error(String),
}
