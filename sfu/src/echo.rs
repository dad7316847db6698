//! The connectivity check's delay probe: small messages on a data channel
//! labelled [`ECHO_LABEL`] come straight back, so the page can time the
//! media path's round trip many times a second, idle and while it sends or
//! receives. Bounded: only short messages, at most
//! [`MAX_ECHOES_PER_SECOND`], so no session can make a worker busy with it.

use std::time::{Duration, Instant};

use str0m::channel::ChannelId;

/// The label of the data channel whose messages are echoed.
pub const ECHO_LABEL: &str = "carecall-echo";
/// Longer messages are not echoed (a probe is a sequence number).
const MAX_ECHO_BYTES: usize = 64;
/// Echoes per second per session, at most (the page sends 10).
pub const MAX_ECHOES_PER_SECOND: u32 = 50;

/// One session's echo channel and its budget (generic over the channel's
/// id only so the rules are tested without a session).
#[derive(Debug)]
pub(crate) struct Echo<Id = ChannelId> {
    channel: Option<Id>,
    window_start: Option<Instant>,
    in_window: u32,
}

impl<Id> Default for Echo<Id> {
    fn default() -> Self {
        Echo {
            channel: None,
            window_start: None,
            in_window: 0,
        }
    }
}

impl<Id: Copy + PartialEq> Echo<Id> {
    /// A data channel opened: remembered if it is the echo channel.
    pub fn on_open(&mut self, id: Id, label: &str) {
        if label == ECHO_LABEL {
            self.channel = Some(id);
        }
    }

    /// Whether a message of `len` bytes that arrived on channel `id` at
    /// `now` is to be sent back.
    pub fn admits(&mut self, id: Id, len: usize, now: Instant) -> bool {
        if self.channel != Some(id) || len > MAX_ECHO_BYTES {
            return false;
        }
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= Duration::from_secs(1) {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window >= MAX_ECHOES_PER_SECOND {
            return false;
        }
        self.in_window += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_messages_on_the_echo_channel_within_the_budget_come_back() {
        let (probe, other) = (1u16, 3u16);
        let mut echo = Echo::<u16>::default();
        let t0 = Instant::now();
        assert!(!echo.admits(probe, 8, t0), "not opened yet");
        echo.on_open(other, "chat");
        echo.on_open(probe, ECHO_LABEL);
        assert!(!echo.admits(other, 8, t0), "another channel");
        assert!(!echo.admits(probe, MAX_ECHO_BYTES + 1, t0), "too long");
        let admitted = (0..200).filter(|_| echo.admits(probe, 8, t0)).count();
        assert_eq!(admitted, MAX_ECHOES_PER_SECOND as usize);
        assert!(
            echo.admits(probe, 8, t0 + Duration::from_secs(1)),
            "a new second"
        );
    }
}
