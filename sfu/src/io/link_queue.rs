//! What workers queue for one relay link. Control messages keep their
//! order and are never dropped (a lost `Open` or `Left` would leave the
//! two rooms out of step); packets wait in a bounded queue and, once it is
//! full, are dropped and counted, as a congested network drops them. A link
//! held up (its control stream out of credit, the relay thread busy) so
//! holds at most [`PACKETS_QUEUED`] packets, not all a call sends meanwhile.

use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError, UnboundedReceiver, UnboundedSender};

use super::relay::{Counters, Outgoing};
use crate::cascade::wire::LinkMessage;
use crate::cascade::RelayedPacket;

/// Packets waiting for one link at most: a second of ten rooms' media
/// crossing (8,000 packets/s measured), a fifth of a second of fifty's;
/// about 10 MB of payloads at worst.
pub(super) const PACKETS_QUEUED: usize = 8192;

/// The workers' side: cloned once per room the link carries.
#[derive(Debug, Clone)]
pub(super) struct LinkQueue {
    messages: UnboundedSender<LinkMessage>,
    packets: mpsc::Sender<(u32, RelayedPacket)>,
    counters: Arc<Counters>,
}

/// The link writer's side.
#[derive(Debug)]
pub(super) struct Queued {
    messages: UnboundedReceiver<LinkMessage>,
    packets: mpsc::Receiver<(u32, RelayedPacket)>,
}

/// The link is gone: nothing more can be queued for it.
#[derive(Debug)]
pub(super) struct LinkGone;

impl LinkQueue {
    /// A queue whose dropped packets count in `counters`.
    pub(super) fn new(counters: Arc<Counters>) -> (LinkQueue, Queued) {
        let (messages, message_rx) = mpsc::unbounded_channel();
        let (packets, packet_rx) = mpsc::channel(PACKETS_QUEUED);
        let queue = LinkQueue {
            messages,
            packets,
            counters,
        };
        let queued = Queued {
            messages: message_rx,
            packets: packet_rx,
        };
        (queue, queued)
    }

    /// Queues `out`; a packet finding the queue full is dropped (counted).
    pub(super) fn send(&self, out: Outgoing) -> Result<(), LinkGone> {
        match out {
            Outgoing::Message(m) => self.messages.send(m).map_err(|_| LinkGone),
            Outgoing::Packet(channel, p) => match self.packets.try_send((channel, p)) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    Counters::add(&self.counters.packets_dropped, 1);
                    Ok(())
                }
                Err(TrySendError::Closed(_)) => Err(LinkGone),
            },
        }
    }
}

impl Queued {
    /// The next thing to write, control messages first; `None` once every
    /// [`LinkQueue`] is dropped and both queues are empty.
    pub(super) async fn next(&mut self) -> Option<Outgoing> {
        tokio::select! {
            biased;
            Some(m) = self.messages.recv() => Some(Outgoing::Message(m)),
            Some((channel, p)) = self.packets.recv() => Some(Outgoing::Packet(channel, p)),
            else => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::cascade::wire::decode_packet;

    fn packet() -> RelayedPacket {
        // Version, channel, origin 5, layer f, flags, pt 96, seq 9, RTP time
        // 3000, media time 3000, mid "1", a payload of 4.
        let mut bytes = vec![1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 2, 1, 96];
        bytes.extend_from_slice(&9u64.to_be_bytes());
        bytes.extend_from_slice(&3000u32.to_be_bytes());
        bytes.extend_from_slice(&3000u64.to_be_bytes());
        bytes.extend_from_slice(&[1, b'1', 1, 2, 3, 4]);
        decode_packet(&bytes, Instant::now()).expect("a packet").1
    }

    #[tokio::test]
    async fn packets_past_the_bound_are_dropped_and_counted_and_messages_go_first() {
        let counters = Arc::new(Counters::default());
        let (queue, mut queued) = LinkQueue::new(counters.clone());
        for _ in 0..PACKETS_QUEUED + 10 {
            queue
                .send(Outgoing::Packet(3, packet()))
                .expect("link there");
        }
        let close = || Outgoing::Message(LinkMessage::Close { channel: 3 });
        for _ in 0..5 {
            queue.send(close()).expect("link there");
        }
        let dropped = counters
            .packets_dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(dropped, 10, "only the packets past the bound");
        for _ in 0..5 {
            let next = queued.next().await;
            assert!(matches!(next, Some(Outgoing::Message(_))), "{next:?}");
        }
        drop(queue);
        let mut packets = 0;
        while let Some(out) = queued.next().await {
            assert!(matches!(out, Outgoing::Packet(3, _)));
            packets += 1;
        }
        assert_eq!(packets, PACKETS_QUEUED, "every queued packet, then the end");
    }

    #[test]
    fn a_queue_whose_writer_is_gone_says_so() {
        let (queue, queued) = LinkQueue::new(Arc::default());
        drop(queued);
        let close = Outgoing::Message(LinkMessage::Close { channel: 1 });
        assert!(queue.send(close).is_err());
        assert!(queue.send(Outgoing::Packet(1, packet())).is_err());
    }
}
