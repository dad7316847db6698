//! The connection between two nodes: QUIC (quinn), one connection per node
//! pair, both ends authenticated by certificates the hub's own CA signed.
//! Control messages go in order on one stream the connecting node opens;
//! packets go as unreliable datagrams, lost rather than late, as RTP would
//! be on UDP.
//!
//! A stranger reaching the port gets nowhere: a client without a
//! certificate from the hub's CA fails the handshake, and the endpoint
//! holds at most [`MAX_LINKS`] connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream, TransportConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::wire::{self, LinkMessage, WireError};
use super::RelayedPacket;

/// ALPN of the relay, newest first: a node never mistakes another protocol
/// for it, and two nodes of different versions (during an upgrade) settle
/// on the older one's. Version 2 added [`crate::cascade::Control::Recording`]
/// and [`crate::cascade::Control::Consent`].
const ALPNS: [&[u8]; 2] = [b"carecall-relay/2", b"carecall-relay/1"];

/// The first byte on a link's control stream: its version.
const STREAM_VERSION: u8 = 1;

/// Most connections one node holds: a hub has a handful of nodes.
pub const MAX_LINKS: usize = 32;

/// A link silent this long is gone (keep-alives go every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The first packet size tried. Browsers send RTP up to about 1,200 bytes;
/// with the relay's header it fits in one datagram on any Ethernet LAN.
/// Path MTU discovery goes on from here.
const INITIAL_MTU: u16 = 1400;

/// Why a link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The node's certificate, key or the hub's CA could not be read.
    #[error("relay identity: {0}")]
    Identity(String),
    /// The TLS configuration was refused.
    #[error("relay TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The UDP socket could not be bound.
    #[error("relay socket: {0}")]
    Io(#[from] std::io::Error),
    /// The connection could not be made or was lost.
    #[error("relay connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The connection could not be started.
    #[error("relay connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// Writing to the control stream failed.
    #[error("relay write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading the control stream failed or it ended.
    #[error("relay read: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// A datagram could not be sent.
    #[error("relay datagram: {0}")]
    Datagram(#[from] quinn::SendDatagramError),
    /// The other node sent bytes that are not the relay's.
    #[error("relay message: {0}")]
    Wire(#[from] WireError),
    /// The handshake took longer than allowed.
    #[error("relay handshake timed out")]
    Timeout,
    /// The endpoint holds [`MAX_LINKS`] connections already.
    #[error("relay endpoint full")]
    Full,
}

/// What proves a node is one of the hub's: its certificate chain and key,
/// and the hub's CA certificate that every node's certificate is signed by.
#[derive(Debug)]
pub struct NodeIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    hub_ca: CertificateDer<'static>,
}

impl NodeIdentity {
    /// Reads an identity from PEM text.
    pub fn from_pem(cert: &[u8], key: &[u8], hub_ca: &[u8]) -> Result<Self, LinkError> {
        let bad = |what: &str, e: rustls::pki_types::pem::Error| {
            LinkError::Identity(format!("{what}: {e}"))
        };
        let certs = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", e))?;
        if certs.is_empty() {
            return Err(LinkError::Identity("no certificate in the PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad("key", e))?;
        let hub_ca = CertificateDer::from_pem_slice(hub_ca).map_err(|e| bad("hub CA", e))?;
        Ok(NodeIdentity { certs, key, hub_ca })
    }

    fn roots(&self) -> Result<rustls::RootCertStore, LinkError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.hub_ca.clone())?;
        Ok(roots)
    }
}

/// How a datagram went into a link's send queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramQueued {
    /// There was room for it.
    Fitted,
    /// The queue was full: one or more of the oldest queued datagrams were
    /// dropped to make room (a link that cannot carry what is sent).
    Displaced,
}

/// Datagrams queued either way before the oldest are dropped: a quarter
/// of a second of a busy link (about 100 Mbit/s).
const DATAGRAM_BUFFER: usize = 4 << 20;

fn transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.initial_mtu(INITIAL_MTU);
    t.datagram_receive_buffer_size(Some(DATAGRAM_BUFFER));
    t.datagram_send_buffer_size(DATAGRAM_BUFFER);
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("a small timeout")));
    // One control stream, opened by the connecting node.
    t.max_concurrent_bidi_streams(1u8.into());
    t.max_concurrent_uni_streams(0u8.into());
    Arc::new(t)
}

/// One node's QUIC endpoint: it accepts other nodes' links and makes its own.
#[derive(Debug)]
pub struct RelayEndpoint {
    endpoint: Endpoint,
}

impl RelayEndpoint {
    /// Binds the endpoint on `addr` (UDP). Needs a tokio runtime.
    pub fn bind(addr: SocketAddr, identity: &NodeIdentity) -> Result<Self, LinkError> {
        Self::bind_speaking(addr, identity, &ALPNS)
    }

    /// An endpoint that speaks only the relay's first version, as a node
    /// not yet upgraded does: for tests of a hub in the middle of an upgrade.
    #[doc(hidden)]
    pub fn bind_first_version(
        addr: SocketAddr,
        identity: &NodeIdentity,
    ) -> Result<Self, LinkError> {
        Self::bind_speaking(addr, identity, &ALPNS[1..])
    }

    fn bind_speaking(
        addr: SocketAddr,
        identity: &NodeIdentity,
        alpns: &[&[u8]],
    ) -> Result<Self, LinkError> {
        let alpns: Vec<Vec<u8>> = alpns.iter().map(|a| a.to_vec()).collect();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls13 = &[&rustls::version::TLS13];
        let roots = Arc::new(identity.roots()?);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| LinkError::Identity(e.to_string()))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
        server.alpn_protocols = alpns.clone();
        let server =
            QuicServerConfig::try_from(server).map_err(|e| LinkError::Identity(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
        server.transport_config(transport());

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(tls13)?
            .with_root_certificates(roots)
            .with_client_auth_cert(identity.certs.clone(), identity.key.clone_key())?;
        client.alpn_protocols = alpns;
        let client =
            QuicClientConfig::try_from(client).map_err(|e| LinkError::Identity(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client));
        client.transport_config(transport());

        // Bursts of keyframes from every room crossing at once: the
        // socket's buffers as large as the media sockets'.
        let socket = std::net::UdpSocket::bind(addr)?;
        crate::io::udp::enlarge_buffers(&socket, addr);
        let runtime = Arc::new(quinn::TokioRuntime);
        let config = quinn::EndpointConfig::default();
        let mut endpoint = Endpoint::new(config, Some(server), socket, runtime)?;
        endpoint.set_default_client_config(client);
        Ok(RelayEndpoint { endpoint })
    }

    /// Where other nodes reach it.
    pub fn local_addr(&self) -> Result<SocketAddr, LinkError> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Opens a link to the node at `addr`, whose certificate must name
    /// `name` and be signed by the hub's CA.
    pub async fn connect(&self, addr: SocketAddr, name: &str) -> Result<RelayLink, LinkError> {
        let handshake = async {
            let connection = self.endpoint.connect(addr, name)?.await?;
            let (mut send, recv) = connection.open_bi().await?;
            // A stream reaches the other side with its first byte.
            send.write_all(&[STREAM_VERSION]).await?;
            Ok::<_, LinkError>(RelayLink::new(connection, send, recv))
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| LinkError::Timeout)?
    }

    /// The next link another node opens, its handshake waited for; `None`
    /// once the endpoint is closed. A failed handshake is an error for this
    /// one attempt only. (A node takes [`RelayEndpoint::incoming`] and
    /// shakes hands beside it instead, so one slow stranger holds no one.)
    pub async fn accept(&self) -> Option<Result<RelayLink, LinkError>> {
        let incoming = self.incoming().await?;
        Some(Self::handshake(incoming).await)
    }

    /// The next connection attempt, not yet authenticated; `None` once the
    /// endpoint is closed. Past [`MAX_LINKS`] connections it is refused
    /// here and the next one is waited for.
    pub async fn incoming(&self) -> Option<quinn::Incoming> {
        loop {
            let incoming = self.endpoint.accept().await?;
            if self.endpoint.open_connections() <= MAX_LINKS {
                return Some(incoming);
            }
            tracing::warn!(from = %incoming.remote_address(), "relay endpoint full: connection refused");
            incoming.refuse();
        }
    }

    /// Completes an incoming connection: the other end proves it is one of
    /// the hub's nodes and opens its control stream, within
    /// [`HANDSHAKE_TIMEOUT`].
    pub async fn handshake(incoming: quinn::Incoming) -> Result<RelayLink, LinkError> {
        let handshake = async {
            let connection = incoming.await?;
            let (send, mut recv) = connection.accept_bi().await?;
            let mut version = [0];
            recv.read_exact(&mut version).await?;
            if version[0] != STREAM_VERSION {
                return Err(WireError::UnknownType(version[0]).into());
            }
            Ok(RelayLink::new(connection, send, recv))
        };
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
        result.unwrap_or(Err(LinkError::Timeout))
    }

    /// Closes every link and the socket.
    pub fn close(&self) {
        self.endpoint.close(0u8.into(), b"node stopping");
    }
}

/// One link to another node.
#[derive(Debug)]
pub struct RelayLink {
    writer: LinkWriter,
    reader: LinkReader,
}

/// The sending half of a link.
#[derive(Debug)]
pub struct LinkWriter {
    connection: Connection,
    send: SendStream,
    /// Reused for every message and packet written.
    buffer: Vec<u8>,
    /// The relay's version the other node speaks.
    version: u8,
}

/// The receiving half of a link: control messages and datagrams may be
/// read by two tasks at once.
#[derive(Debug)]
pub struct LinkReader {
    connection: Connection,
    recv: RecvStream,
}

impl RelayLink {
    fn new(connection: Connection, send: SendStream, recv: RecvStream) -> Self {
        let protocol = connection
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol);
        // What the two nodes settled on; the first version when unsure.
        let version = match protocol.as_deref() {
            Some(p) if p == ALPNS[0] => 2,
            _ => 1,
        };
        RelayLink {
            writer: LinkWriter {
                connection: connection.clone(),
                send,
                buffer: Vec::with_capacity(wire::MAX_MESSAGE),
                version,
            },
            reader: LinkReader { connection, recv },
        }
    }

    /// The relay's version the two nodes speak (see `ALPNS`).
    pub fn version(&self) -> u8 {
        self.writer.version
    }

    /// Splits the link for a writing task and reading ones.
    pub fn split(self) -> (LinkWriter, LinkReader) {
        (self.writer, self.reader)
    }

    /// The other node's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.writer.connection.remote_address()
    }

    /// The round-trip time QUIC measures on the link.
    pub fn rtt(&self) -> Duration {
        self.writer.connection.rtt()
    }

    /// See [`LinkWriter::send_message`].
    pub async fn send_message(&mut self, message: &LinkMessage) -> Result<(), LinkError> {
        self.writer.send_message(message).await
    }

    /// See [`LinkReader::recv_message`].
    pub async fn recv_message(&mut self) -> Result<LinkMessage, LinkError> {
        self.reader.recv_message().await
    }

    /// See [`LinkWriter::send_packet`].
    pub fn send_packet(
        &mut self,
        channel: u32,
        packet: &RelayedPacket,
    ) -> Result<DatagramQueued, LinkError> {
        self.writer.send_packet(channel, packet)
    }

    /// See [`DatagramReader::recv_packet`].
    pub async fn recv_packet(&self) -> Result<(u32, RelayedPacket), LinkError> {
        self.reader.datagrams().recv_packet().await
    }
}

impl LinkWriter {
    /// Sends a control message, in order after the ones before. A message
    /// the other node's version does not know is left out: it would take
    /// it for garbage and close the link (a node not yet upgraded is not
    /// told of recordings; its browsers are not either, as before).
    pub async fn send_message(&mut self, message: &LinkMessage) -> Result<(), LinkError> {
        if message.version() > self.version {
            return Ok(());
        }
        self.buffer.clear();
        wire::encode_message(message, &mut self.buffer);
        self.send.write_all(&self.buffer).await?;
        Ok(())
    }

    /// Sends a packet as a datagram. A packet too big for the path is an
    /// error (and lost, as it would be on UDP). When the send queue is full
    /// (a congested link), quinn drops its oldest datagrams to take this
    /// one, without saying so: that is told as [`DatagramQueued::Displaced`], so
    /// the loss is counted.
    pub fn send_packet(
        &mut self,
        channel: u32,
        packet: &RelayedPacket,
    ) -> Result<DatagramQueued, LinkError> {
        wire::encode_packet(channel, packet, &mut self.buffer);
        let full = self.connection.datagram_send_buffer_space() < self.buffer.len();
        let datagram = bytes::Bytes::copy_from_slice(&self.buffer);
        self.connection.send_datagram(datagram)?;
        Ok(match full {
            true => DatagramQueued::Displaced,
            false => DatagramQueued::Fitted,
        })
    }

    /// Ends the link.
    pub fn close(&self) {
        self.connection.close(0u8.into(), b"link closed");
    }
}

impl LinkReader {
    /// The next control message; an error when the other node sent
    /// something that is not one, or the link ended.
    pub async fn recv_message(&mut self) -> Result<LinkMessage, LinkError> {
        let mut prefix = [0; 2];
        self.recv.read_exact(&mut prefix).await?;
        let len = wire::message_len(prefix)?;
        let mut body = [0; wire::MAX_MESSAGE];
        self.recv.read_exact(&mut body[..len]).await?;
        Ok(wire::decode_message(&body[..len])?)
    }

    /// A handle that reads datagrams beside the control reader.
    pub fn datagrams(&self) -> DatagramReader {
        DatagramReader {
            connection: self.connection.clone(),
        }
    }
}

/// Reads a link's datagrams (cloned from [`LinkReader::datagrams`]).
#[derive(Debug, Clone)]
pub struct DatagramReader {
    connection: Connection,
}

impl DatagramReader {
    /// The next packet datagram, with its channel; an error for a
    /// malformed one (skip it) or a lost link.
    pub async fn recv_packet(&self) -> Result<(u32, RelayedPacket), LinkError> {
        let datagram = self.connection.read_datagram().await?;
        Ok(wire::decode_packet(&datagram, Instant::now())?)
    }

    /// Why the link ended, once it has.
    pub fn closed_reason(&self) -> Option<quinn::ConnectionError> {
        self.connection.close_reason()
    }
}
