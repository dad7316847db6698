//! The JSON messages on the signalling WebSocket (documented in
//! `docs/signalling.md`). Every message is an object with a `type`.

use serde::{Deserialize, Serialize};

use crate::token::Role;

/// The protocol version this server speaks. A client sends it in `join`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest message a client may send. SDP for a few tracks is 5–15 KiB;
/// anything near this limit is a bug or an attack.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Messages from the browser.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: the join token from the link, and the protocol version.
    Join {
        /// Protocol version the client speaks.
        v: u32,
        /// The token from the join link.
        token: String,
    },
    /// First message on a new socket after the old one dropped: carry on
    /// the session `resume` names (from `joined`) instead of joining again.
    Resume {
        /// Protocol version the client speaks.
        v: u32,
        /// The resume token from `joined`.
        resume: String,
    },
    /// The browser's SDP offer (its first, or an ICE restart).
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// The browser's answer to an offer from the server.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate (the `candidate` attribute of `RTCIceCandidate`).
    Candidate {
        /// The candidate line; empty means end of candidates.
        candidate: String,
    },
    /// The participant's microphone and camera state, shown to the others.
    Mute {
        /// Microphone on.
        audio: bool,
        /// Camera on.
        video: bool,
    },
    /// The height, in device pixels, at which this browser shows another
    /// participant's video: the SFU sends a simulcast layer that fits it.
    View {
        /// Whose video (`p<n>`).
        participant: String,
        /// Rendered height in device pixels; 0 when the tile is hidden.
        height: u32,
    },
    /// Start (`on: true`) or stop recording the call. Clinicians only.
    Record {
        /// Start or stop.
        on: bool,
    },
    /// Consent to record the call (`given`), or a refusal, as the resident
    /// or whoever decides for them gave it. Clinicians only; needed before
    /// `record`.
    Consent {
        /// Agreed to recording.
        given: bool,
        /// Who decided.
        by: crate::ConsentGiver,
        /// How.
        how: crate::ConsentManner,
    },
    /// Ask another participant for something only the person holding the
    /// tablet can do (show the rear camera). Hub staff only.
    Ask {
        /// Whom (`p<n>`).
        participant: String,
        /// What is asked.
        what: Request,
    },
    /// The participant leaves the call.
    Leave {},
}

/// What hub staff may ask of someone else in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    /// Turn to the rear camera: a wound, a rash, a chart or a medicine label
    /// is shown with the camera facing away from the person holding it.
    RearCamera,
    /// Take a full-resolution still with the current camera and send it
    /// (see `images`): a wound, a rash or a chart in detail, whatever the
    /// call's video can carry.
    Photo,
}

impl ClientMessage {
    /// The `type` names a client may send, to tell an unknown type from a bad one.
    pub const TYPES: &'static [&'static str] = &[
        "join",
        "resume",
        "offer",
        "answer",
        "candidate",
        "mute",
        "view",
        "record",
        "consent",
        "ask",
        "leave",
    ];
}

/// Someone else in the call, as the browser shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The id that is also the `msid` stream id of their tracks.
    pub participant: String,
    /// Display name from their link.
    pub name: String,
    /// Role from their link.
    pub role: Role,
    /// Microphone on.
    pub audio: bool,
    /// Camera on.
    pub video: bool,
}

/// A TURN server as `RTCIceServer` wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IceServer {
    /// `turn:` and `turns:` URLs.
    pub urls: Vec<String>,
    /// Time-limited username (TURN REST API scheme).
    pub username: String,
    /// Its password.
    pub credential: String,
}

/// Messages to the browser.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// The join was accepted.
    Joined {
        /// Protocol version of the server.
        v: u32,
        /// The browser's own participant id.
        participant: String,
        /// The room joined.
        room: String,
        /// The role the link gave (what the page offers: recording is a
        /// clinician's).
        role: Role,
        /// Everyone already in the call.
        participants: Vec<PeerInfo>,
        /// TURN servers for the browser's `RTCPeerConnection` (empty when the
        /// hub offers none), with credentials for this participant.
        ice_servers: Vec<IceServer>,
        /// Present it in `resume` on a new socket if this one drops: the
        /// session waits 30 s for it.
        resume: String,
    },
    /// The session was resumed on this socket. Messages held while no
    /// socket was attached follow.
    Resumed {
        /// The browser's own participant id, unchanged.
        participant: String,
        /// Everyone else in the call now: a tile for anyone not listed goes.
        participants: Vec<PeerInfo>,
        /// `new` when the hub restarted since: its media session is gone, so
        /// the browser starts a fresh connection (a new offer); absent when
        /// only the socket was lost and media carries on.
        #[serde(skip_serializing_if = "Option::is_none")]
        media: Option<&'static str>,
        /// Fresh TURN credentials, with `media: new`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// The hub is stopping to restart (an upgrade, `systemctl restart`):
    /// the socket closes next, with code 4006, and the browser resumes once
    /// the hub is back. Shown while it waits.
    Restarting {
        /// Plain-language explanation, safe to show.
        message: String,
    },
    /// The room is hosted on another node of the hub: the browser sends
    /// the same first message (its join) there. The socket closes next,
    /// with code 4007.
    Elsewhere {
        /// The node's base URL (`https://node-b.hub.example`).
        url: String,
    },
    /// The hub's live nodes (docs/scaling.md), sent after `joined` or
    /// `resumed` on a hub of several: where the browser resumes if its
    /// node goes.
    Nodes {
        /// Their base URLs, this node's among them.
        urls: Vec<String>,
    },
    /// The SFU's answer to the browser's offer.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// An offer from the SFU: tracks of others were added or removed.
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// The m-line `mid` carries this participant's track (for the tile).
    Track {
        /// The m-line's mid.
        mid: String,
        /// Whose track.
        participant: String,
    },
    /// Media is flowing between the browser and the SFU.
    MediaConnected,
    /// Someone joined.
    ParticipantJoined(PeerInfo),
    /// Someone changed their microphone or camera state.
    ParticipantUpdated(PeerInfo),
    /// Video from a participant was paused because this browser's link
    /// cannot carry it without hurting the sound, or it came back.
    VideoPaused {
        /// Whose video.
        participant: String,
        /// True while paused.
        paused: bool,
    },
    /// Send the camera's simulcast layers up to `highest` (`q`, `h` or `f`)
    /// and pause those above: nobody would watch them.
    PublishLayers {
        /// The rid of the highest layer to keep sending.
        highest: String,
    },
    /// The call is being recorded (`active`), or recording stopped. Sent to
    /// everyone the moment it changes, and on joining a recorded call.
    Recording {
        /// Recording now.
        active: bool,
        /// Who started it (`p<n>`).
        by: String,
        /// When it started, Unix seconds.
        since: u64,
    },
    /// The call's consent to record: sent to everyone when it is recorded,
    /// and on joining. `null` until a clinician records it.
    Consent {
        /// The entry, if any.
        consent: Option<crate::Consent>,
    },
    /// Hub staff ask this browser's user for something (see
    /// [`ClientMessage::Ask`]); the page shows it with a way to do it.
    Asked {
        /// What is asked.
        what: Request,
        /// Who asks (`p<n>`).
        by: String,
        /// Their display name.
        name: String,
        /// For a photo: the ticket its upload goes under
        /// (`/images/uploads/{ticket}`), for this page only.
        #[serde(skip_serializing_if = "Option::is_none")]
        upload: Option<String>,
    },
    /// How much of a photo this participant asked for has arrived.
    ImageProgress {
        /// Who is sending it (`p<n>`).
        from: String,
        /// Bytes arrived.
        received: usize,
        /// Bytes in all.
        total: usize,
    },
    /// A photo this participant asked for has arrived and is stored.
    Image {
        /// Its id.
        image: String,
        /// Who took it (`p<n>`).
        from: String,
        /// `image/jpeg` or `image/png`.
        mime: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes.
        size: u64,
        /// SHA-256 of the bytes, hex.
        sha256: String,
        /// A signed link to the image, for this participant.
        url: String,
        /// When the link expires (Unix seconds).
        expires: u64,
    },
    /// Someone left.
    ParticipantLeft {
        /// Their participant id.
        participant: String,
    },
    /// Something everyone in the call should know, from the hub (who is
    /// joining, where the call is being passed). Shown as it comes.
    Notice {
        /// Plain-language text, safe to show.
        message: String,
    },
    /// The hub ended the call; the socket closes next. The browser should
    /// not rejoin by itself.
    CallEnded {
        /// Plain-language explanation, safe to show.
        message: String,
    },
    /// Something the browser sent was refused. Fatal errors are followed by close.
    Error {
        /// Stable machine-readable code.
        code: String,
        /// Plain-language explanation, safe to show.
        message: String,
    },
}

/// Why a client message was refused before it reached the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the 64 KiB limit")]
    TooLarge(usize),
    /// Not JSON, or not a JSON object with a string `type`.
    #[error("message is not a JSON object with a \"type\": {0}")]
    Malformed(String),
    /// A `type` this server does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known type with missing or wrong fields.
    #[error("bad {kind} message: {reason}")]
    BadFields {
        /// The message type.
        kind: String,
        /// What was wrong.
        reason: String,
    },
    /// Binary frames are not part of the protocol.
    #[error("binary messages are not supported")]
    Binary,
}

impl ProtocolError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge(_) => "too-large",
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::UnknownType(_) => "unknown-type",
            ProtocolError::BadFields { .. } => "bad-message",
            ProtocolError::Binary => "binary-not-supported",
        }
    }
}

/// Parses one text frame, telling apart the ways it can be wrong.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(text.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| ProtocolError::Malformed("no string \"type\" field".into()))?
        .to_owned();
    if !ClientMessage::TYPES.contains(&kind.as_str()) {
        return Err(ProtocolError::UnknownType(clip(&kind)));
    }
    serde_json::from_value(value).map_err(|e| ProtocolError::BadFields {
        kind,
        reason: clip(&e.to_string()),
    })
}

/// What a client sent, cut to a few dozen characters for an error message
/// (which goes back to the client and into the log): an error never
/// echoes a large input back.
pub(crate) fn clip(text: &str) -> String {
    const KEEP: usize = 60;
    match text.char_indices().nth(KEEP) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_known_message() {
        assert_eq!(
            parse_client_message(r#"{"type":"join","v":1,"token":"t"}"#),
            Ok(ClientMessage::Join {
                v: 1,
                token: "t".into()
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"view","participant":"p3","height":360}"#),
            Ok(ClientMessage::View {
                participant: "p3".into(),
                height: 360
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"leave"}"#),
            Ok(ClientMessage::Leave {})
        );
        assert_eq!(
            parse_client_message(r#"{"type":"record","on":true}"#),
            Ok(ClientMessage::Record { on: true })
        );
        assert!(matches!(
            parse_client_message(r#"{"type":"record","on":"yes"}"#),
            Err(ProtocolError::BadFields { .. })
        ));
        assert_eq!(
            parse_client_message(r#"{"type":"ask","participant":"p2","what":"rear-camera"}"#),
            Ok(ClientMessage::Ask {
                participant: "p2".into(),
                what: Request::RearCamera
            })
        );
        assert!(matches!(
            parse_client_message(r#"{"type":"ask","participant":"p2","what":"microphone"}"#),
            Err(ProtocolError::BadFields { .. })
        ));
        assert_eq!(
            parse_client_message(r#"{"type":"mute","audio":false,"video":true}"#),
            Ok(ClientMessage::Mute {
                audio: false,
                video: true
            })
        );
    }

    #[test]
    fn tells_malformed_unknown_and_bad_apart() {
        assert_eq!(
            parse_client_message("{not json").unwrap_err().code(),
            "malformed"
        );
        assert_eq!(
            parse_client_message("[1,2]").unwrap_err().code(),
            "malformed"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"dance"}"#).unwrap_err(),
            ProtocolError::UnknownType("dance".into())
        );
        assert_eq!(
            parse_client_message(r#"{"type":"offer"}"#)
                .unwrap_err()
                .code(),
            "bad-message"
        );
        assert_eq!(
            parse_client_message(r#"{"type":"leave","x":1}"#)
                .unwrap_err()
                .code(),
            "bad-message"
        );
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let big = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(parse_client_message(&big).unwrap_err().code(), "too-large");
    }

    #[test]
    fn server_messages_serialise_with_kebab_types() {
        let m = ServerMessage::ParticipantLeft {
            participant: "p1".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"participant-left","participant":"p1"}"#
        );
    }
}
