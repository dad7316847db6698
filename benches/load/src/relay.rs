//! What crossed the relay between nodes in a run whose rooms span two:
//! read from each node's `/metrics` (`carecall_relay_packets_total` and
//! `carecall_relay_bytes_total`, sent), the same counters the admins see.

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Target;

/// Relayed packets and bytes, summed over the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Crossed {
    pub packets: f64,
    pub bytes: f64,
    /// Relayed packets a node dropped (too big, a full buffer, malformed).
    pub dropped: f64,
}

impl Crossed {
    /// What crossed since `before`.
    pub fn since(&self, before: &Crossed) -> Crossed {
        Crossed {
            packets: self.packets - before.packets,
            bytes: self.bytes - before.bytes,
            dropped: self.dropped - before.dropped,
        }
    }
}

/// What every node of `target` has sent over its relay so far; nothing
/// for a target of one node (it has no relay).
pub async fn crossed(target: &Target) -> Result<Crossed> {
    let mut all = Crossed::default();
    if target.far.is_none() {
        return Ok(all);
    }
    for node in target.nodes() {
        let text = metrics(&node.base_url).await?;
        all.packets += value(&text, "carecall_relay_packets_total{direction=\"sent\"}");
        all.bytes += value(&text, "carecall_relay_bytes_total{direction=\"sent\"}");
        all.dropped += value(&text, "carecall_relay_dropped_total");
    }
    Ok(all)
}

/// `GET /metrics` on a loopback server (HTTP/1.0: the reply ends with the
/// connection).
async fn metrics(base_url: &str) -> Result<String> {
    let host = base_url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("reaching {host} for /metrics"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}

/// A series' value in Prometheus text, 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_series_is_read_by_its_whole_name() {
        let text = "carecall_relay_packets_total{direction=\"received\"} 7\n\
                    carecall_relay_packets_total{direction=\"sent\"} 12\n";
        assert_eq!(
            super::value(text, "carecall_relay_packets_total{direction=\"sent\"}"),
            12.0
        );
        assert_eq!(super::value(text, "carecall_relay_links"), 0.0);
    }
}
