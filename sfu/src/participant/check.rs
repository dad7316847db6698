//! The connectivity check's media on a participant's session: the paced
//! download test (the delay probe is in `crate::echo`).

use std::time::Instant;

use str0m::format::Codec;
use str0m::Input;

use super::Participant;
use crate::downlink_test::{DownlinkPlan, DownlinkTest};
use crate::error::SfuError;

impl Participant {
    /// Starts a download test on the video m-line the browser offered to
    /// receive on and nobody's video took (the connectivity check's).
    pub fn start_downlink_test(
        &mut self,
        plan: DownlinkPlan,
        now: Instant,
    ) -> Result<(), SfuError> {
        let no_stream = || SfuError::NoTestStream {
            participant: self.id,
        };
        let mid = self
            .spare_video
            .filter(|m| !self.subscriptions.iter().any(|s| s.mid() == Some(*m)))
            .ok_or_else(no_stream)?;
        let pt = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
            .ok_or_else(no_stream)?;
        tracing::info!(parent: &self.span, %mid, "download test started");
        self.downlink_test = Some((mid, DownlinkTest::new(plan, pt, now)));
        Ok(())
    }

    /// Writes the download test's packets due at `now`; returns when the
    /// next one is due.
    pub fn send_test_packets(&mut self, now: Instant) -> Option<Instant> {
        let span = &self.span;
        let (mid, test) = self.downlink_test.as_mut()?;
        if !self.connected {
            return test.next_at();
        }
        let mut direct = self.rtc.direct_api();
        let Some(tx) = direct.stream_tx_by_mid(*mid, None) else {
            tracing::warn!(parent: span, %mid, "download test has no stream to send on");
            self.downlink_test = None;
            return None;
        };
        let mut wrote = false;
        while let Some(packet) = test.poll(now) {
            tx.write_rtp(packet);
            wrote = true;
        }
        let next = test.next_at();
        if next.is_none() {
            tracing::info!(parent: span, sent = test.sent(), "download test finished");
            self.downlink_test = None;
        }
        if wrote {
            // Written packets leave at the session's next timer run.
            self.handle_input(Input::Timeout(now));
        }
        next
    }
}
