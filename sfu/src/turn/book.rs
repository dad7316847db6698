//! Which of this machine's UDP ports are TURN relays, and how their clients
//! reach TURN. The media plane looks a participant's remote address up here
//! (once per statistics request, never per packet) to tell the helpdesk
//! "relayed over TLS" rather than "UDP".

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::server::Transport;

/// The embedded TURN server's live relays, shared with the media plane.
#[derive(Clone, Default, Debug)]
pub struct RelayBook {
    relays: Arc<Mutex<HashMap<u16, Transport>>>,
    /// Addresses of this machine that relayed packets come from.
    local_ips: Arc<Mutex<Vec<IpAddr>>>,
}

impl RelayBook {
    /// Records the addresses relays send from (the SFU's own addresses).
    pub fn set_local_ips(&self, ips: impl IntoIterator<Item = IpAddr>) {
        let mut local = self.local_ips.lock().unwrap_or_else(|e| e.into_inner());
        local.clear();
        local.extend(ips);
    }

    pub(crate) fn insert(&self, relay: SocketAddr, transport: Transport) {
        self.relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(relay.port(), transport);
    }

    pub(crate) fn remove(&self, relay: SocketAddr) {
        self.relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&relay.port());
    }

    /// How the client behind `remote` reaches TURN, if `remote` is one of
    /// this machine's relays.
    pub fn lookup(&self, remote: SocketAddr) -> Option<Transport> {
        let local = self.local_ips.lock().unwrap_or_else(|e| e.into_inner());
        if !local.contains(&remote.ip()) {
            return None;
        }
        drop(local);
        let relays = self.relays.lock().unwrap_or_else(|e| e.into_inner());
        relays.get(&remote.port()).copied()
    }
}

impl Transport {
    /// How the dashboard and metrics name a relayed path.
    pub fn relay_name(self) -> &'static str {
        match self {
            Transport::Udp => "relay-udp",
            Transport::Tcp => "relay-tcp",
            Transport::Tls => "relay-tls",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_relay_on_a_local_address_counts() {
        let book = RelayBook::default();
        book.set_local_ips(["10.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()]);
        let relay: SocketAddr = "10.0.0.1:50123".parse().unwrap();
        book.insert(relay, Transport::Tls);
        assert_eq!(book.lookup(relay), Some(Transport::Tls));
        // Relays bind every address: seen from loopback too.
        assert_eq!(
            book.lookup("127.0.0.1:50123".parse().unwrap()),
            Some(Transport::Tls)
        );
        // A browser elsewhere that happens to use the same port is not one.
        assert_eq!(book.lookup("192.0.2.9:50123".parse().unwrap()), None);
        book.remove(relay);
        assert_eq!(book.lookup(relay), None);
    }
}
