//! How much SDP a client may hand the SFU. str0m parses every media section
//! and candidate on the media worker, which serves a whole set of rooms: an
//! offer with thousands of sections kept one worker busy for seconds and
//! stalled every call on it. Offers and answers are measured here, as text,
//! before they reach a worker.

use crate::error::SfuError;
use crate::id::ParticipantId;

/// Limits on one SDP offer or answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpLimits {
    /// Bytes of SDP text.
    pub max_bytes: usize,
    /// `m=` sections: a call's answer has two per other participant and
    /// one for data.
    pub max_media_sections: usize,
    /// `a=candidate` lines.
    pub max_candidates: usize,
}

impl SdpLimits {
    /// What a browser in a call of up to a dozen people needs, with room.
    pub const CALL: SdpLimits = SdpLimits {
        max_bytes: 64 * 1024,
        max_media_sections: 64,
        max_candidates: 64,
    };

    /// Refuses `sdp` from `participant` if it is over a limit.
    pub fn check(&self, participant: ParticipantId, sdp: &str) -> Result<(), SfuError> {
        let over = |what: String| {
            Err(SfuError::SdpTooLarge {
                participant,
                reason: what,
            })
        };
        if sdp.len() > self.max_bytes {
            return over(format!(
                "{} bytes of SDP, over {}",
                sdp.len(),
                self.max_bytes
            ));
        }
        let (mut sections, mut candidates) = (0, 0);
        for line in sdp.lines() {
            sections += usize::from(line.starts_with("m="));
            candidates += usize::from(line.starts_with("a=candidate"));
        }
        if sections > self.max_media_sections {
            return over(format!(
                "{sections} media sections, over {}",
                self.max_media_sections
            ));
        }
        if candidates > self.max_candidates {
            return over(format!(
                "{candidates} ICE candidates, over {}",
                self.max_candidates
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_candidates_and_size_are_each_limited() {
        let p = ParticipantId(1);
        let limits = SdpLimits {
            max_bytes: 1000,
            max_media_sections: 2,
            max_candidates: 2,
        };
        let ok = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
        assert!(limits.check(p, ok).is_ok());
        let three = format!("{ok}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        assert!(matches!(
            limits.check(p, &three),
            Err(SfuError::SdpTooLarge { .. })
        ));
        let candidates = format!("{ok}a=candidate:2 1 udp 1 1.2.3.4 6 typ host\r\na=candidate:3 1 udp 1 1.2.3.4 7 typ host\r\n");
        assert!(limits.check(p, &candidates).is_err());
        assert!(limits.check(p, &"a".repeat(1001)).is_err());
    }
}
