//! The same participants against Janus's VideoRoom plugin, for the side by
//! side comparison: Janus's JSON API over its WebSocket transport (session,
//! handles, `join`/`configure` for a publisher, a multistream subscription
//! per participant). Janus renames streams, so arrivals are keyed by the
//! name of the feed each SSRC carries (`p<seed>`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::RTCSessionDescription;

use crate::peer::{gathered_sdp, Media, Owners};
use crate::{Sfu, Target};

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One Janus session over its own WebSocket.
pub struct JanusSession {
    id: u64,
    out: mpsc::UnboundedSender<String>,
    waiters: Waiters,
    next: AtomicU64,
}

impl JanusSession {
    /// Opens a session on the Janus WebSocket at `url`.
    pub async fn open(url: &str) -> Result<JanusSession> {
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("sec-websocket-protocol", "janus-protocol".parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .with_context(|| format!("connecting to Janus at {url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                // A request's answer: its "success"/"error", or for a plugin
                // message the "event" after the "ack".
                if v["janus"] == "ack" {
                    continue;
                }
                if let Some(tx) = v["transaction"]
                    .as_str()
                    .and_then(|t| w.lock().unwrap().remove(t))
                {
                    let _ = tx.send(v);
                }
            }
        });
        let mut session = JanusSession {
            id: 0,
            out,
            waiters,
            next: AtomicU64::new(1),
        };
        let created = session.call(json!({ "janus": "create" })).await?;
        session.id = created["data"]["id"].as_u64().context("no session id")?;
        let (out, id) = (session.out.clone(), session.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let ka = json!({ "janus": "keepalive", "session_id": id, "transaction": "ka" });
                if out.send(ka.to_string()).is_err() {
                    break;
                }
            }
        });
        Ok(session)
    }

    async fn call(&self, mut msg: Value) -> Result<Value> {
        let transaction = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        msg["transaction"] = json!(transaction);
        if self.id != 0 {
            msg["session_id"] = json!(self.id);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(transaction, tx);
        self.out
            .send(msg.to_string())
            .ok()
            .context("Janus socket closed")?;
        let reply = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("Janus did not answer within 20 s")?
            .context("Janus socket closed")?;
        if reply["janus"] == "error" || reply["plugindata"]["data"]["error"].is_string() {
            bail!("Janus refused {msg}: {reply}");
        }
        Ok(reply)
    }

    /// Attaches a VideoRoom handle.
    pub async fn attach(&self) -> Result<u64> {
        let r = self
            .call(json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" }))
            .await?;
        r["data"]["id"].as_u64().context("no handle id")
    }

    /// A VideoRoom request on `handle`, with an SDP if given.
    pub async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let mut msg = json!({ "janus": "message", "handle_id": handle, "body": body });
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        self.call(msg).await
    }

    /// Ends the session (its handles and connections with it).
    pub fn close(&self) {
        let bye = json!({ "janus": "destroy", "session_id": self.id, "transaction": "bye" });
        let _ = self.out.send(bye.to_string());
    }
}

/// Creates room `room` (allowing `publishers`) on a fresh handle.
pub async fn create_room(session: &JanusSession, room: u64, publishers: usize) -> Result<()> {
    let handle = session.attach().await?;
    session
        .message(
            handle,
            json!({ "request": "create", "room": room, "publishers": publishers.max(3),
                    "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0 }),
            None,
        )
        .await?;
    Ok(())
}

/// Publishes `media` into `room`; returns the feed id.
pub async fn publish(session: &JanusSession, room: u64, media: &Media, name: &str) -> Result<u64> {
    let offer = media.pc.create_offer(None).await?;
    media.pc.set_local_description(offer).await?;
    let sdp = gathered_sdp(&*media.pc).await;
    let (feed, answer) = publish_offer(session, room, sdp, name).await?;
    media
        .pc
        .set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    Ok(feed)
}

/// Joins `room` as publisher `name` with `offer`; returns the feed id and
/// Janus's answer.
pub async fn publish_offer(
    session: &JanusSession,
    room: u64,
    offer: String,
    name: &str,
) -> Result<(u64, String)> {
    let handle = session.attach().await?;
    let joined = session
        .message(
            handle,
            json!({ "request": "join", "ptype": "publisher", "room": room, "display": name }),
            None,
        )
        .await?;
    let feed = joined["plugindata"]["data"]["id"]
        .as_u64()
        .context("no publisher id")?;
    let configured = session
        .message(
            handle,
            json!({ "request": "configure", "audio": true, "video": true }),
            // The layers are listed lowest first, as carecall's browser
            // client lists them (Janus assumes highest first unless told).
            Some(json!({ "type": "offer", "sdp": offer, "rid_order": "lmh" })),
        )
        .await?;
    let answer = configured["jsep"]["sdp"]
        .as_str()
        .context("no answer from Janus")?;
    Ok((feed, answer.to_owned()))
}

/// The answer of `media` (a connection without tracks, made with owners)
/// to Janus's subscriber `offer`, its candidates gathered.
pub async fn answer_with(media: &Media, offer: &str) -> Result<String> {
    media
        .pc
        .set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
        .await?;
    let answer = media.pc.create_answer(None).await?;
    media.pc.set_local_description(answer).await?;
    Ok(gathered_sdp(&*media.pc).await)
}

/// A subscription Janus has offered, waiting for the answer.
pub struct Offered {
    handle: u64,
    /// Janus's offer.
    pub offer: String,
}

/// Asks Janus for `feeds` in `room` at simulcast layer `layer` (0 the
/// lowest) on a new handle, and names in `owners` each SSRC of the offer
/// by the feed's name, before any of its packets arrive.
pub async fn request_feeds(
    session: &JanusSession,
    room: u64,
    feeds: &[(u64, String)],
    owners: Option<&Owners>,
    layer: usize,
) -> Result<Offered> {
    let handle = session.attach().await?;
    let streams: Vec<_> = feeds
        .iter()
        .map(|(f, _)| json!({ "feed": f, "substream": layer, "temporal": 2 }))
        .collect();
    let attached = session
        .message(
            handle,
            json!({ "request": "join", "ptype": "subscriber", "room": room, "streams": streams }),
            None,
        )
        .await?;
    let offer = attached["jsep"]["sdp"]
        .as_str()
        .context("no offer from Janus")?;
    // Janus names the streams itself: the offer gives each mid's SSRC, the
    // reply each mid's feed.
    if let Some(owners) = owners {
        let ssrcs = crate::peer::ssrc_by_mid(offer);
        let mut owners = owners.lock().unwrap();
        for s in attached["plugindata"]["data"]["streams"]
            .as_array()
            .context("no streams from Janus")?
        {
            let (Some(mid), Some(feed)) = (s["mid"].as_str(), s["feed_id"].as_u64()) else {
                continue;
            };
            if let (Some(ssrc), Some((_, name))) =
                (ssrcs.get(mid), feeds.iter().find(|(f, _)| *f == feed))
            {
                owners.insert(*ssrc, name.clone());
            }
        }
    }
    Ok(Offered {
        handle,
        offer: offer.to_owned(),
    })
}

impl Offered {
    /// Sends the subscriber's `answer`: Janus starts sending.
    pub async fn start(self, session: &JanusSession, room: u64, answer: String) -> Result<()> {
        session
            .message(
                self.handle,
                json!({ "request": "start", "room": room }),
                Some(json!({ "type": "answer", "sdp": answer })),
            )
            .await?;
        Ok(())
    }
}

/// A network namespace with a veth link to the host, made for one Janus run
/// and deleted with it. Only addresses of that link are used.
struct JanusNet {
    name: String,
    host_ip: std::net::Ipv4Addr,
    ns_ip: std::net::Ipv4Addr,
    ns_iface: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {} (Janus runs in a network namespace: this needs root)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl JanusNet {
    fn create() -> Result<JanusNet> {
        let n = std::process::id() % 250 + 1;
        let name = format!("cc-janus-{n}");
        let (host_iface, ns_iface) = (format!("ccj{n}h"), format!("ccj{n}n"));
        let net = JanusNet {
            name: name.clone(),
            host_ip: std::net::Ipv4Addr::new(10, 251, n as u8, 1),
            ns_ip: std::net::Ipv4Addr::new(10, 251, n as u8, 2),
            ns_iface: ns_iface.clone(),
        };
        let _ = ip(&["netns", "delete", &name]);
        ip(&["netns", "add", &name])?;
        ip(&[
            "link",
            "add",
            &host_iface,
            "type",
            "veth",
            "peer",
            "name",
            &ns_iface,
        ])?;
        ip(&["link", "set", &ns_iface, "netns", &name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", net.host_ip),
            "dev",
            &host_iface,
        ])?;
        ip(&["link", "set", &host_iface, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&[
            "addr",
            "add",
            &format!("{}/30", net.ns_ip),
            "dev",
            &ns_iface,
        ])?;
        inside(&["link", "set", &ns_iface, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        Ok(net)
    }
}

impl Drop for JanusNet {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = ip(&["netns", "delete", &self.name]);
    }
}

/// A Janus started by [`spawn`]: stopped, and its namespace deleted, when
/// dropped.
pub struct SpawnedJanus {
    child: std::process::Child,
    _conf: tempfile::TempDir,
    _net: JanusNet,
}

impl Drop for SpawnedJanus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Debian's Janus with `benches/janus/`'s configuration in a network
/// namespace of its own (root needed), and the target to load it.
pub fn spawn(pinning: crate::proc::Pinning) -> Result<(SpawnedJanus, Target)> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../janus");
    let conf = tempfile::tempdir().context("a temporary Janus configuration directory")?;
    let net = JanusNet::create()?;
    let port = 8188;
    for entry in
        std::fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jcfg") {
            let text = std::fs::read_to_string(&path)?
                .replace("@CONF@", &conf.path().display().to_string())
                .replace("@PORT@", &port.to_string())
                .replace("@IFACE@", &net.ns_iface)
                .replace("@IP@", &net.ns_ip.to_string())
                .replace("@LOOPS@", &pinning.server_cores().to_string());
            std::fs::write(
                conf.path().join(path.file_name().context("file name")?),
                text,
            )?;
        }
    }
    let child = Command::new("ip")
        .args(["netns", "exec", &net.name])
        .args(pinning.server_command("janus"))
        .arg("-F")
        .arg(conf.path())
        .arg("-C")
        .arg(conf.path().join("janus.jcfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting janus")?;
    // `ip netns exec` (and taskset) replace themselves with janus: the same
    // process id.
    let pid = child.id();
    let janus = SpawnedJanus {
        child,
        _conf: conf,
        _net: net,
    };
    let net = &janus._net;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::net::TcpStream::connect((net.ns_ip, port)).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("Janus did not listen on {}:{port} within 15 s (is Debian's janus installed? apt-get install janus)", net.ns_ip);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let target = Target {
        sfu: Sfu::Janus,
        base_url: format!("ws://{}:{port}", net.ns_ip),
        secret: Vec::new(),
        pid,
        local_ip: net.host_ip.into(),
        far: None,
    };
    Ok((janus, target))
}
