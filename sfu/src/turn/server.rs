//! The TURN server's state (RFC 8656), sans-IO: fed with what clients and
//! peers send, it answers and says where to relay; sockets live in
//! [`super::edge`]. It relays only to the SFU's own media addresses, so it
//! cannot be used as an open relay to anywhere else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ring::hmac;

use super::credentials::TurnSecret;
use super::failures::{TurnFailure, TurnFailures};
use super::stun::{attr, long_term_key, method, Class, Message, Writer};
use crate::refusals::{Refusals, Surface};

/// How a client reached the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// TURN over UDP.
    Udp,
    /// TURN over TCP.
    Tcp,
    /// TURN over TLS (over TCP).
    Tls,
}

/// A client's 5-tuple as the server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// The client's address.
    pub addr: SocketAddr,
    /// The server address it reached.
    pub local: SocketAddr,
}

/// What to do with a packet from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientAction<'a> {
    /// Nothing to send (an indication refused, garbage).
    Nothing,
    /// Send this reply back to the client.
    Reply(Vec<u8>),
    /// Send `data` from the allocation's relay address to `peer`.
    Relay {
        /// The relay address (its socket sends).
        relay: SocketAddr,
        /// The SFU media address.
        peer: SocketAddr,
        /// The payload.
        data: &'a [u8],
    },
}

/// An allocation's lifetime when the client asks for none (RFC 8656: 10 min).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// The longest lifetime granted.
const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// Permissions and channel bindings last this long unless refreshed.
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Nonces are good for an hour.
const NONCE_LIFETIME: u64 = 3600;
/// Allocations the server holds at most (each is a UDP socket).
pub const MAX_ALLOCATIONS: usize = 2000;

/// How much of the TURN server one client may take, so that nobody holding
/// one credential (the check page hands them out to anyone) or one address
/// can use up the allocations or connections a locked-down home needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnLimits {
    /// Allocations one credential may hold. A browser takes one per TURN
    /// URL (UDP, TCP, TLS) and as many again after an ICE restart.
    pub per_credential: usize,
    /// Allocations one client address may hold: every tablet of a care
    /// home behind one NAT together.
    pub per_address: usize,
    /// TCP and TLS connections one address may hold open.
    pub connections_per_address: usize,
    /// A TCP or TLS connection without an allocation after this is closed.
    pub unauthenticated: Duration,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            per_credential: 10,
            per_address: 64,
            connections_per_address: 32,
            unauthenticated: Duration::from_secs(5),
        }
    }
}
/// Channel numbers clients may bind (RFC 8656 §12).
const CHANNELS: std::ops::RangeInclusive<u16> = 0x4000..=0x4fff;

struct Allocation {
    relay: SocketAddr,
    username: String,
    expires: Instant,
    permissions: Vec<(IpAddr, Instant)>,
    channels: Vec<(u16, SocketAddr, Instant)>,
}

impl Allocation {
    fn permits(&self, peer: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|(ip, until)| *ip == peer && *until > now)
    }

    fn permit(&mut self, peer: IpAddr, until: Instant) {
        match self.permissions.iter_mut().find(|(ip, _)| *ip == peer) {
            Some(p) => p.1 = until,
            None => self.permissions.push((peer, until)),
        }
    }
}

/// The TURN server's allocations and the rules it relays by.
pub struct TurnServer {
    realm: String,
    secret: TurnSecret,
    nonce_key: hmac::Key,
    /// The only addresses relayed to: the SFU's media sockets.
    peers: Vec<SocketAddr>,
    allocations: HashMap<Client, Allocation>,
    by_relay: HashMap<SocketAddr, Client>,
    /// Allocations held per credential and per client address.
    per_credential: HashMap<String, usize>,
    per_address: HashMap<IpAddr, usize>,
    limits: crate::Live<TurnLimits>,
    refusals: Refusals,
    failures: TurnFailures,
    /// Relay addresses whose allocations ended, for the edge to close.
    closed: Vec<SocketAddr>,
}

/// Why a request was refused.
enum Refusal {
    /// A failed request, counted in [`TurnFailures`].
    Failed(TurnFailure),
    /// A limit reached, counted in [`Refusals`].
    QuotaReached,
}

impl From<TurnFailure> for Refusal {
    fn from(f: TurnFailure) -> Self {
        Refusal::Failed(f)
    }
}

impl TurnServer {
    /// A server for `realm` that checks REST-API credentials made with
    /// `secret` and relays only to `peers`, within `limits`, which a reload may change (each refusal
    /// counted in `refusals`, each failed request in `failures`).
    /// `nonce_seed` keys this run's nonces (random bytes).
    pub fn new(
        realm: &str,
        secret: TurnSecret,
        peers: Vec<SocketAddr>,
        nonce_seed: &[u8],
        limits: crate::Live<TurnLimits>,
        refusals: Refusals,
        failures: TurnFailures,
    ) -> Self {
        TurnServer {
            realm: realm.to_owned(),
            secret,
            nonce_key: hmac::Key::new(hmac::HMAC_SHA256, nonce_seed),
            peers,
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_credential: HashMap::new(),
            per_address: HashMap::new(),
            limits,
            refusals,
            failures,
            closed: Vec::new(),
        }
    }

    /// Allocations now.
    pub fn allocations(&self) -> usize {
        self.allocations.len()
    }

    /// Whether `client` holds an allocation (it has authenticated).
    pub fn has_allocation(&self, client: &Client) -> bool {
        self.allocations.contains_key(client)
    }

    /// Handles a STUN message or ChannelData from `client`. For an Allocate
    /// that passes every check (credentials first), `bind_relay` is called
    /// for a relay address; the second value says whether one was taken, so
    /// nobody makes the server bind a socket without valid credentials.
    /// `unix_now` checks credential and nonce expiry.
    pub fn handle_client<'a>(
        &mut self,
        now: Instant,
        unix_now: u64,
        client: Client,
        data: &'a [u8],
        bind_relay: impl FnOnce() -> Option<SocketAddr>,
    ) -> (ClientAction<'a>, bool) {
        if let Some((channel, payload)) = channel_data(data) {
            return (self.channel_to_peer(now, client, channel, payload), false);
        }
        let Some(m) = Message::parse(data) else {
            return (ClientAction::Nothing, false);
        };
        match (m.class, m.method) {
            (Class::Indication, method::SEND) => (self.send_indication(now, client, &m), false),
            (Class::Request, method::BINDING) => {
                let reply = Writer::new(method::BINDING, Class::Success, m.transaction)
                    .xor_address(attr::XOR_MAPPED_ADDRESS, client.addr)
                    .finish();
                (ClientAction::Reply(reply), false)
            }
            (Class::Request, _) => self.request(now, unix_now, client, &m, bind_relay),
            _ => (ClientAction::Nothing, false),
        }
    }

    fn channel_to_peer<'a>(
        &self,
        now: Instant,
        client: Client,
        channel: u16,
        payload: &'a [u8],
    ) -> ClientAction<'a> {
        let Some(a) = self.allocations.get(&client) else {
            return ClientAction::Nothing;
        };
        match a
            .channels
            .iter()
            .find(|(n, _, until)| *n == channel && *until > now)
        {
            Some(&(_, peer, _)) if a.permits(peer.ip(), now) => ClientAction::Relay {
                relay: a.relay,
                peer,
                data: payload,
            },
            _ => ClientAction::Nothing,
        }
    }

    fn send_indication<'a>(
        &self,
        now: Instant,
        client: Client,
        m: &Message<'a>,
    ) -> ClientAction<'a> {
        let (Some(a), Some(peer), Some(data)) = (
            self.allocations.get(&client),
            m.xor_address(attr::XOR_PEER_ADDRESS),
            m.get(attr::DATA),
        ) else {
            return ClientAction::Nothing;
        };
        if a.permits(peer.ip(), now) && self.peers.contains(&peer) {
            ClientAction::Relay {
                relay: a.relay,
                peer,
                data,
            }
        } else {
            ClientAction::Nothing
        }
    }

    fn request<'a>(
        &mut self,
        now: Instant,
        unix_now: u64,
        client: Client,
        m: &Message<'_>,
        bind_relay: impl FnOnce() -> Option<SocketAddr>,
    ) -> (ClientAction<'a>, bool) {
        let (username, key) = match self.authenticate(unix_now, m) {
            Ok(found) => found,
            Err(reply) => return (ClientAction::Reply(reply), false),
        };
        let result = match m.method {
            method::ALLOCATE => self.allocate(now, client, m, &username, bind_relay),
            other => match self.allocations.get(&client) {
                None => Err(TurnFailure::AllocationMismatch.into()),
                Some(a) if a.username != username => Err(TurnFailure::WrongCredentials.into()),
                Some(_) => match other {
                    method::REFRESH => self.refresh(now, client, m),
                    method::CREATE_PERMISSION => self.create_permission(now, client, m),
                    method::CHANNEL_BIND => self.channel_bind(now, client, m),
                    _ => Err(TurnFailure::BadRequest.into()),
                },
            },
        };
        let taken = m.method == method::ALLOCATE && result.is_ok();
        let reply = match result {
            Ok(w) => w,
            Err(refused) => {
                let (code, reason) = match refused {
                    Refusal::Failed(f) => {
                        self.failures.count(f);
                        f.reply()
                    }
                    Refusal::QuotaReached => (486, "Allocation Quota Reached"),
                };
                Writer::new(m.method, Class::Error, m.transaction).error(code, reason)
            }
        };
        (ClientAction::Reply(reply.integrity(&key).finish()), taken)
    }

    /// Checks nonce, credentials and integrity; on failure, the reply.
    fn authenticate(&self, unix_now: u64, m: &Message<'_>) -> Result<(String, hmac::Key), Vec<u8>> {
        let challenge = |code: u16, reason: &str| {
            Writer::new(m.method, Class::Error, m.transaction)
                .error(code, reason)
                .add(attr::REALM, self.realm.as_bytes())
                .add(attr::NONCE, self.nonce(unix_now).as_bytes())
                .finish()
        };
        let (Some(username), Some(nonce)) = (m.text(attr::USERNAME), m.text(attr::NONCE)) else {
            return Err(challenge(401, "Unauthorized"));
        };
        let failed = |f: TurnFailure| {
            self.failures.count(f);
            let (code, reason) = f.reply();
            challenge(code, reason)
        };
        if !self.nonce_valid(nonce, unix_now) {
            return Err(failed(TurnFailure::StaleNonce));
        }
        let passwords = self.secret.check(username, unix_now).map_err(failed)?;
        let key = passwords
            .iter()
            .map(|p| long_term_key(username, &self.realm, p))
            .find(|key| m.integrity_matches(key))
            .ok_or_else(|| failed(TurnFailure::WrongPassword))?;
        Ok((username.to_owned(), key))
    }

    /// `<expiry hex>.<tag>`: checkable without keeping state.
    fn nonce(&self, unix_now: u64) -> String {
        let expiry = format!("{:x}", unix_now + NONCE_LIFETIME);
        let tag = hmac::sign(&self.nonce_key, expiry.as_bytes());
        let tag: String = tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{expiry}.{tag}")
    }

    fn nonce_valid(&self, nonce: &str, unix_now: u64) -> bool {
        let Some((expiry_hex, tag)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(expiry) = u64::from_str_radix(expiry_hex, 16) else {
            return false;
        };
        let expected = hmac::sign(&self.nonce_key, expiry_hex.as_bytes());
        let expected: String = expected.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        expiry > unix_now && expected == tag
    }

    fn allocate(
        &mut self,
        now: Instant,
        client: Client,
        m: &Message<'_>,
        username: &str,
        bind_relay: impl FnOnce() -> Option<SocketAddr>,
    ) -> Result<Writer, Refusal> {
        if self.allocations.contains_key(&client) {
            return Err(TurnFailure::AllocationMismatch.into());
        }
        // REQUESTED-TRANSPORT: protocol number in the first byte; UDP only.
        if m.get(attr::REQUESTED_TRANSPORT).and_then(|v| v.first()) != Some(&17) {
            return Err(TurnFailure::UnsupportedTransport.into());
        }
        let limits = *self.limits.get();
        let over =
            if self.per_credential.get(username).copied().unwrap_or(0) >= limits.per_credential {
                Some("allocations_per_credential")
            } else if self
                .per_address
                .get(&client.addr.ip())
                .copied()
                .unwrap_or(0)
                >= limits.per_address
            {
                Some("allocations_per_address")
            } else if self.allocations.len() >= MAX_ALLOCATIONS {
                Some("allocations_total")
            } else {
                None
            };
        if let Some(reason) = over {
            self.refusals
                .refuse(Surface::Turn, reason, &client.addr.ip());
            return Err(Refusal::QuotaReached);
        }
        let relay = bind_relay().ok_or(TurnFailure::NoRelayAddress)?;
        *self.per_credential.entry(username.to_owned()).or_default() += 1;
        *self.per_address.entry(client.addr.ip()).or_default() += 1;
        let lifetime = lifetime(m);
        self.allocations.insert(
            client,
            Allocation {
                relay,
                username: username.to_owned(),
                expires: now + lifetime,
                permissions: Vec::new(),
                channels: Vec::new(),
            },
        );
        self.by_relay.insert(relay, client);
        tracing::debug!(client = %client.addr, transport = ?client.transport, %relay, "TURN allocation");
        Ok(Writer::new(method::ALLOCATE, Class::Success, m.transaction)
            .xor_address(attr::XOR_RELAYED_ADDRESS, relay)
            .u32(attr::LIFETIME, lifetime.as_secs() as u32)
            .xor_address(attr::XOR_MAPPED_ADDRESS, client.addr))
    }

    fn refresh(
        &mut self,
        now: Instant,
        client: Client,
        m: &Message<'_>,
    ) -> Result<Writer, Refusal> {
        let requested = m.u32(attr::LIFETIME);
        let ok = Writer::new(method::REFRESH, Class::Success, m.transaction);
        if requested == Some(0) {
            self.close_client(client);
            return Ok(ok.u32(attr::LIFETIME, 0));
        }
        let lifetime = lifetime(m);
        if let Some(a) = self.allocations.get_mut(&client) {
            a.expires = now + lifetime;
        }
        Ok(ok.u32(attr::LIFETIME, lifetime.as_secs() as u32))
    }

    fn create_permission(
        &mut self,
        now: Instant,
        client: Client,
        m: &Message<'_>,
    ) -> Result<Writer, Refusal> {
        let peer = m
            .xor_address(attr::XOR_PEER_ADDRESS)
            .ok_or(TurnFailure::BadRequest)?;
        if !self.peers.iter().any(|p| p.ip() == peer.ip()) {
            return Err(TurnFailure::ForbiddenPeer.into());
        }
        if let Some(a) = self.allocations.get_mut(&client) {
            a.permit(peer.ip(), now + PERMISSION_LIFETIME);
        }
        Ok(Writer::new(
            method::CREATE_PERMISSION,
            Class::Success,
            m.transaction,
        ))
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        client: Client,
        m: &Message<'_>,
    ) -> Result<Writer, Refusal> {
        let channel = m
            .get(attr::CHANNEL_NUMBER)
            .and_then(|v| Some(u16::from_be_bytes([*v.first()?, *v.get(1)?])))
            .filter(|n| CHANNELS.contains(n))
            .ok_or(TurnFailure::BadRequest)?;
        let peer = m
            .xor_address(attr::XOR_PEER_ADDRESS)
            .ok_or(TurnFailure::BadRequest)?;
        if !self.peers.contains(&peer) {
            return Err(TurnFailure::ForbiddenPeer.into());
        }
        let a = self
            .allocations
            .get_mut(&client)
            .ok_or(TurnFailure::AllocationMismatch)?;
        let clash = a
            .channels
            .iter()
            .any(|(n, p, _)| (*n == channel) != (*p == peer));
        if clash {
            return Err(TurnFailure::BadRequest.into());
        }
        let until = now + CHANNEL_LIFETIME;
        match a.channels.iter_mut().find(|(n, _, _)| *n == channel) {
            Some(c) => c.2 = until,
            None => a.channels.push((channel, peer, until)),
        }
        a.permit(peer.ip(), now + PERMISSION_LIFETIME);
        Ok(Writer::new(
            method::CHANNEL_BIND,
            Class::Success,
            m.transaction,
        ))
    }

    /// A packet from `peer` arrived on `relay`: the client to pass it to, and
    /// its framing written into `out` (ChannelData if the peer has a channel,
    /// else a Data indication). `None`: no allocation, or no permission.
    pub fn handle_peer(
        &self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut [u8],
    ) -> Option<(Client, usize)> {
        let client = *self.by_relay.get(&relay)?;
        let a = self.allocations.get(&client)?;
        if !a.permits(peer.ip(), now) {
            return None;
        }
        let channel = a
            .channels
            .iter()
            .find(|(_, p, until)| *p == peer && *until > now);
        let len = match channel {
            Some(&(n, _, _)) => {
                // Over TCP and TLS, ChannelData is padded to 4 bytes.
                let padded = match client.transport {
                    Transport::Udp => data.len(),
                    _ => data.len().div_ceil(4) * 4,
                };
                let total = 4 + padded;
                if total > out.len() || data.len() > usize::from(u16::MAX) {
                    return None;
                }
                out[..2].copy_from_slice(&n.to_be_bytes());
                out[2..4].copy_from_slice(&(data.len() as u16).to_be_bytes());
                out[4..4 + data.len()].copy_from_slice(data);
                out[4 + data.len()..total].fill(0);
                total
            }
            None => {
                let mut tx = [0u8; 12];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut tx).ok()?;
                let msg = Writer::new(method::DATA, Class::Indication, tx)
                    .xor_address(attr::XOR_PEER_ADDRESS, peer)
                    .add(attr::DATA, data)
                    .finish();
                out.get_mut(..msg.len())?.copy_from_slice(&msg);
                msg.len()
            }
        };
        Some((client, len))
    }

    /// Ends allocations, permissions and channels past their time. The
    /// relays of ended allocations are in [`TurnServer::take_closed`].
    pub fn expire(&mut self, now: Instant) {
        let ended: Vec<Client> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in ended {
            self.close_client(c);
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|(_, until)| *until > now);
            a.channels.retain(|(_, _, until)| *until > now);
        }
    }

    /// Ends `client`'s allocation (its TCP connection closed, or it asked).
    pub fn close_client(&mut self, client: Client) {
        if let Some(a) = self.allocations.remove(&client) {
            self.by_relay.remove(&a.relay);
            self.closed.push(a.relay);
            release(&mut self.per_credential, a.username);
            release(&mut self.per_address, client.addr.ip());
        }
    }

    /// Relay addresses whose allocations ended since the last call.
    pub fn take_closed(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.closed)
    }
}

/// One allocation fewer held under `key`.
fn release<K: std::hash::Hash + Eq>(held: &mut HashMap<K, usize>, key: K) {
    if let std::collections::hash_map::Entry::Occupied(mut e) = held.entry(key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

fn lifetime(m: &Message<'_>) -> Duration {
    m.u32(attr::LIFETIME)
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or(DEFAULT_LIFETIME)
        .clamp(DEFAULT_LIFETIME.min(MAX_LIFETIME), MAX_LIFETIME)
}

/// A ChannelData message: channel number and payload.
pub fn channel_data(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < 4 || data[0] & 0xc0 != 0x40 {
        return None;
    }
    let channel = u16::from_be_bytes([data[0], data[1]]);
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    Some((channel, data.get(4..4 + len)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_UNIX: u64 = 1_800_000_000;
    const REALM: &str = "carecall";

    struct Setup {
        server: TurnServer,
        secret: TurnSecret,
        client: Client,
        sfu: SocketAddr,
        relay: SocketAddr,
        now: Instant,
        /// The credential's label: one credential per label.
        label: &'static str,
    }

    fn setup() -> Setup {
        setup_with(TurnLimits::default())
    }

    fn setup_with(limits: TurnLimits) -> Setup {
        let secret = TurnSecret::new(b"turn secret");
        let sfu: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        Setup {
            server: TurnServer::new(
                REALM,
                secret.clone(),
                vec![sfu],
                b"nonce seed",
                crate::Live::new(limits),
                Refusals::default(),
                TurnFailures::default(),
            ),
            secret,
            client: Client {
                transport: Transport::Tls,
                addr: "192.0.2.10:51000".parse().unwrap(),
                local: "10.0.0.1:443".parse().unwrap(),
            },
            sfu,
            relay: "10.0.0.1:61000".parse().unwrap(),
            now: Instant::now(),
            label: "p3",
        }
    }

    fn reply(action: ClientAction<'_>) -> Vec<u8> {
        match action {
            ClientAction::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn error_code(bytes: &[u8]) -> Option<u16> {
        let m = Message::parse(bytes)?;
        let v = m.get(attr::ERROR_CODE)?;
        Some(u16::from(v[2]) * 100 + u16::from(v[3]))
    }

    impl Setup {
        /// Sends an authenticated request built by `build`; returns the reply.
        fn request(
            &mut self,
            method: u16,
            build: impl FnOnce(Writer) -> Writer,
            spare: Option<SocketAddr>,
        ) -> (Vec<u8>, bool) {
            // First without credentials: the challenge carries realm and nonce.
            let bare = Writer::new(method, Class::Request, [1; 12]).finish();
            let (challenge, _) =
                self.server
                    .handle_client(self.now, NOW_UNIX, self.client, &bare, || spare);
            let challenge = reply(challenge);
            assert_eq!(error_code(&challenge), Some(401));
            let c = Message::parse(&challenge).unwrap();
            let nonce = c.text(attr::NONCE).unwrap().to_owned();
            assert_eq!(c.text(attr::REALM), Some(REALM));
            let creds = self.secret.issue(self.label, NOW_UNIX + 3600);
            let key = long_term_key(&creds.username, REALM, &creds.password);
            let msg = build(Writer::new(method, Class::Request, [2; 12]))
                .add(attr::USERNAME, creds.username.as_bytes())
                .add(attr::REALM, REALM.as_bytes())
                .add(attr::NONCE, nonce.as_bytes())
                .integrity(&key)
                .finish();
            let (action, taken) =
                self.server
                    .handle_client(self.now, NOW_UNIX, self.client, &msg, || spare);
            let bytes = reply(action);
            let m = Message::parse(&bytes).expect("reply parses");
            assert!(m.integrity_matches(&key), "reply is signed");
            (bytes, taken)
        }

        fn try_allocate(&mut self) -> (Vec<u8>, bool) {
            self.request(
                method::ALLOCATE,
                |w| w.u32(attr::REQUESTED_TRANSPORT, 17 << 24),
                Some(self.relay),
            )
        }

        fn allocate(&mut self) {
            let (r, taken) = self.try_allocate();
            assert!(taken, "relay taken: {:?}", error_code(&r));
            let m = Message::parse(&r).unwrap();
            assert_eq!(m.class, Class::Success);
            assert_eq!(m.xor_address(attr::XOR_RELAYED_ADDRESS), Some(self.relay));
            assert_eq!(
                m.xor_address(attr::XOR_MAPPED_ADDRESS),
                Some(self.client.addr)
            );
        }
    }

    #[test]
    fn a_client_allocates_binds_a_channel_and_media_flows_both_ways() {
        let mut s = setup();
        s.allocate();
        let sfu = s.sfu;
        let (r, _) = s.request(
            method::CHANNEL_BIND,
            |w| {
                w.add(attr::CHANNEL_NUMBER, &[0x40, 0x01, 0, 0])
                    .xor_address(attr::XOR_PEER_ADDRESS, sfu)
            },
            None,
        );
        assert_eq!(Message::parse(&r).unwrap().class, Class::Success);
        // Client → SFU through the channel.
        let frame = [0x40, 0x01, 0, 3, 7, 8, 9];
        let (action, _) = s
            .server
            .handle_client(s.now, NOW_UNIX, s.client, &frame, || None);
        assert_eq!(
            action,
            ClientAction::Relay {
                relay: s.relay,
                peer: s.sfu,
                data: &[7, 8, 9]
            }
        );
        // SFU → client: ChannelData, padded for TLS.
        let mut out = [0u8; 64];
        let (client, len) = s
            .server
            .handle_peer(s.now, s.relay, s.sfu, &[1, 2, 3, 4, 5], &mut out)
            .expect("relayed");
        assert_eq!(client, s.client);
        assert_eq!(&out[..len], &[0x40, 0x01, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]);
    }

    #[test]
    fn it_relays_only_to_the_sfu() {
        let mut s = setup();
        s.allocate();
        let elsewhere: SocketAddr = "198.51.100.7:3478".parse().unwrap();
        let (r, _) = s.request(
            method::CREATE_PERMISSION,
            |w| w.xor_address(attr::XOR_PEER_ADDRESS, elsewhere),
            None,
        );
        assert_eq!(error_code(&r), Some(403));
        // A Send indication to anywhere else goes nowhere.
        let send = Writer::new(method::SEND, Class::Indication, [3; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, elsewhere)
            .add(attr::DATA, b"hello")
            .finish();
        let (action, _) = s
            .server
            .handle_client(s.now, NOW_UNIX, s.client, &send, || None);
        assert_eq!(action, ClientAction::Nothing);
        // Nor does a packet from elsewhere reach the client.
        let mut out = [0u8; 64];
        assert!(s
            .server
            .handle_peer(s.now, s.relay, elsewhere, b"x", &mut out)
            .is_none());
        // The SFU, once permitted, gets Send indications; replies come back
        // as Data indications while no channel is bound.
        let sfu = s.sfu;
        s.request(
            method::CREATE_PERMISSION,
            |w| w.xor_address(attr::XOR_PEER_ADDRESS, sfu),
            None,
        );
        let send = Writer::new(method::SEND, Class::Indication, [4; 12])
            .xor_address(attr::XOR_PEER_ADDRESS, sfu)
            .add(attr::DATA, b"hello")
            .finish();
        let (action, _) = s
            .server
            .handle_client(s.now, NOW_UNIX, s.client, &send, || None);
        assert!(matches!(action, ClientAction::Relay { data: b"hello", .. }));
        let (_, len) = s
            .server
            .handle_peer(s.now, s.relay, sfu, b"back", &mut out)
            .expect("relayed");
        let data = Message::parse(&out[..len]).expect("a Data indication");
        assert_eq!(data.method, method::DATA);
        assert_eq!(data.get(attr::DATA), Some(&b"back"[..]));
    }

    #[test]
    fn bad_credentials_and_stale_nonces_are_refused() {
        let mut s = setup();
        let expired = s.secret.issue("p3", NOW_UNIX - 1);
        let key = long_term_key(&expired.username, REALM, &expired.password);
        let nonce = s.server.nonce(NOW_UNIX);
        let msg = Writer::new(method::ALLOCATE, Class::Request, [5; 12])
            .u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .add(attr::USERNAME, expired.username.as_bytes())
            .add(attr::NONCE, nonce.as_bytes())
            .integrity(&key)
            .finish();
        let (action, taken) = s
            .server
            .handle_client(s.now, NOW_UNIX, s.client, &msg, || Some(s.relay));
        assert_eq!(error_code(&reply(action)), Some(401), "expired credentials");
        assert!(!taken);
        // A nonce from over an hour ago is stale.
        let old = s.server.nonce(NOW_UNIX - 3601);
        let good = s.secret.issue("p3", NOW_UNIX + 60);
        let key = long_term_key(&good.username, REALM, &good.password);
        let msg = Writer::new(method::ALLOCATE, Class::Request, [6; 12])
            .add(attr::USERNAME, good.username.as_bytes())
            .add(attr::NONCE, old.as_bytes())
            .integrity(&key)
            .finish();
        let (action, _) = s
            .server
            .handle_client(s.now, NOW_UNIX, s.client, &msg, || Some(s.relay));
        assert_eq!(error_code(&reply(action)), Some(438));
        // Garbage is ignored.
        for junk in [&b"\x00\x01\x00"[..], &[0xff; 40], &[0x40, 1, 0, 200]] {
            let (action, taken) = s
                .server
                .handle_client(s.now, NOW_UNIX, s.client, junk, || None);
            assert_eq!(action, ClientAction::Nothing);
            assert!(!taken);
        }
        assert_eq!(s.server.allocations(), 0);
        let counts = s.server.failures.counts();
        for (reason, n) in [
            ("expired_credential", 1),
            ("stale_nonce", 1),
            ("bad_request", 0),
        ] {
            assert!(counts.contains(&(reason, n)), "{reason}: {counts:?}");
        }
    }

    #[test]
    fn allocations_end_when_they_expire_or_are_released() {
        let mut s = setup();
        s.allocate();
        s.server.expire(s.now + Duration::from_secs(599));
        assert_eq!(s.server.allocations(), 1);
        s.server.expire(s.now + Duration::from_secs(601));
        assert_eq!(s.server.allocations(), 0);
        assert_eq!(s.server.take_closed(), vec![s.relay]);
        s.allocate();
        let (r, _) = s.request(method::REFRESH, |w| w.u32(attr::LIFETIME, 0), None);
        assert_eq!(Message::parse(&r).unwrap().class, Class::Success);
        assert_eq!(s.server.allocations(), 0);
        assert_eq!(s.server.take_closed(), vec![s.relay]);
    }

    /// Moves the client to port `n` of address 192.0.2.`host`.
    fn from(s: &mut Setup, host: u8, n: u16) {
        s.client.addr = SocketAddr::from(([192, 0, 2, host], 50_000 + n));
        s.relay = SocketAddr::from(([10, 0, 0, 1], 20_000 + n));
    }

    #[test]
    fn one_credential_cannot_take_every_allocation() {
        let mut s = setup();
        let limit = TurnLimits::default().per_credential;
        for n in 0..limit as u16 {
            from(&mut s, 1 + (n % 4) as u8, n);
            s.allocate();
        }
        from(&mut s, 9, 999);
        let (r, taken) = s.try_allocate();
        assert_eq!(error_code(&r), Some(486));
        assert!(!taken);
        assert_eq!(
            s.server
                .refusals
                .count(Surface::Turn, "allocations_per_credential"),
            1
        );
        // Another credential from the same address is served.
        s.label = "p4";
        s.allocate();
        // One released, the first credential may allocate again.
        s.label = "p3";
        from(&mut s, 1, 0);
        let (r, _) = s.request(method::REFRESH, |w| w.u32(attr::LIFETIME, 0), None);
        assert_eq!(Message::parse(&r).unwrap().class, Class::Success);
        from(&mut s, 9, 998);
        s.allocate();
    }

    #[test]
    fn one_address_cannot_take_every_allocation() {
        let mut s = setup_with(TurnLimits {
            per_address: 3,
            ..TurnLimits::default()
        });
        let labels = ["a", "b", "c", "d"];
        for (n, label) in labels.iter().enumerate().take(3) {
            s.label = label;
            from(&mut s, 1, n as u16);
            s.allocate();
        }
        s.label = labels[3];
        from(&mut s, 1, 3);
        let (r, taken) = s.try_allocate();
        assert_eq!(error_code(&r), Some(486));
        assert!(!taken);
        from(&mut s, 2, 3);
        s.allocate();
        assert_eq!(
            s.server
                .refusals
                .count(Surface::Turn, "allocations_per_address"),
            1
        );
    }

    #[test]
    fn the_server_holds_at_most_its_allocations_in_total() {
        let mut s = setup_with(TurnLimits {
            per_credential: usize::MAX,
            per_address: usize::MAX,
            ..TurnLimits::default()
        });
        for n in 0..MAX_ALLOCATIONS as u16 {
            from(&mut s, 1 + (n % 200) as u8, n);
            s.allocate();
        }
        assert_eq!(s.server.allocations(), MAX_ALLOCATIONS);
        from(&mut s, 250, 4000);
        let (r, taken) = s.try_allocate();
        assert_eq!(error_code(&r), Some(486));
        assert!(!taken);
        let refused = s.server.refusals.count(Surface::Turn, "allocations_total");
        assert_eq!(refused, 1);
        // One ends; the next client is served.
        from(&mut s, 1, 0);
        let (r, _) = s.request(method::REFRESH, |w| w.u32(attr::LIFETIME, 0), None);
        assert_eq!(Message::parse(&r).unwrap().class, Class::Success);
        from(&mut s, 250, 4000);
        s.allocate();
    }

    #[test]
    fn no_relay_is_bound_before_credentials_are_checked() {
        let mut s = setup();
        let forged = TurnSecret::new(b"not the hub's secret").issue("p3", NOW_UNIX + 60);
        let key = long_term_key(&forged.username, REALM, &forged.password);
        let msg = Writer::new(method::ALLOCATE, Class::Request, [7; 12])
            .u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .add(attr::USERNAME, forged.username.as_bytes())
            .add(attr::NONCE, s.server.nonce(NOW_UNIX).as_bytes())
            .integrity(&key)
            .finish();
        let mut bound = false;
        let (action, taken) = s.server.handle_client(s.now, NOW_UNIX, s.client, &msg, || {
            bound = true;
            Some(s.relay)
        });
        assert_eq!(error_code(&reply(action)), Some(401));
        assert!(
            !taken && !bound,
            "a relay was bound for a forged credential"
        );
    }
}
