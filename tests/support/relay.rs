//! A user-space UDP relay that adds delay, jitter and loss, each direction on
//! its own and changeable during a call. The kernel here has no `netem`, so
//! this is how tests delay media. Put it in a browser's path with
//! [`super::netlab::NetNs::redirect_udp`]; the server then sees the relay as
//! the browser's address. Packets keep their order (jitter never reorders).

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one direction suffers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    pub delay: Duration,
    /// Up to this much extra delay, uniformly at random.
    pub jitter: Duration,
    /// Share of packets dropped, 0.0-1.0.
    pub loss: f64,
}

/// Impairments towards the server (`up`) and towards the browser (`down`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Path {
    pub up: Impairment,
    pub down: Impairment,
}

/// The relay; stops on drop.
pub struct DelayRelay {
    /// Where browsers' packets must be sent (the relay's own socket).
    pub addr: SocketAddr,
    path: Arc<Mutex<Path>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A packet waiting for its time.
struct Due {
    at: Instant,
    data: Vec<u8>,
    /// The client it came from or goes to.
    client: SocketAddr,
    up: bool,
}

impl DelayRelay {
    /// Listens on `bind` and relays every client to `server`.
    pub fn start(bind: SocketAddr, server: SocketAddr) -> DelayRelay {
        let front = UdpSocket::bind(bind).expect("bind relay");
        front.set_nonblocking(true).expect("nonblocking");
        let addr = front.local_addr().expect("relay address");
        let path = Arc::new(Mutex::new(Path::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (path.clone(), stop.clone());
        let thread = std::thread::spawn(move || relay_loop(front, server, &p, &s));
        DelayRelay {
            addr,
            path,
            stop,
            thread: Some(thread),
        }
    }

    /// Changes the impairments from now on (packets already queued keep theirs).
    pub fn set(&self, path: Path) {
        *self.path.lock().expect("relay settings") = path;
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A small xorshift generator: loss and jitter need no cryptography.
/// Tests that simulate the relay use the same one from the same seed.
pub struct Rng(u64);

impl Rng {
    /// The seed the relay starts from.
    pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn relay_loop(front: UdpSocket, server: SocketAddr, path: &Mutex<Path>, stop: &AtomicBool) {
    let mut backs: HashMap<SocketAddr, UdpSocket> = HashMap::new();
    let mut queue: VecDeque<Due> = VecDeque::new();
    let mut last_due = [Instant::now(); 2];
    let mut rng = Rng::new(Rng::SEED);
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let settings = *path.lock().expect("relay settings");
        let mut arrived: Vec<(Vec<u8>, SocketAddr, bool)> = Vec::new();
        while let Ok((n, from)) = front.recv_from(&mut buf) {
            arrived.push((buf[..n].to_vec(), from, true));
            backs.entry(from).or_insert_with(|| {
                let back = UdpSocket::bind(SocketAddr::new(server.ip(), 0)).expect("bind upstream");
                back.set_nonblocking(true).expect("nonblocking");
                back
            });
        }
        for (client, back) in &backs {
            while let Ok((n, _)) = back.recv_from(&mut buf) {
                arrived.push((buf[..n].to_vec(), *client, false));
            }
        }
        for (data, client, up) in arrived {
            let imp = if up { settings.up } else { settings.down };
            if rng.unit() < imp.loss {
                continue;
            }
            let jitter = imp.jitter.mul_f64(rng.unit());
            let lane = &mut last_due[usize::from(up)];
            let at = (now + imp.delay + jitter).max(*lane);
            *lane = at;
            queue.push_back(Due {
                at,
                data,
                client,
                up,
            });
        }
        // Each direction is in order; the queue holds both, so send every
        // packet that is due, not only a due prefix.
        let now = Instant::now();
        queue.retain(|d| {
            if d.at > now {
                return true;
            }
            if d.up {
                if let Some(back) = backs.get(&d.client) {
                    let _ = back.send_to(&d.data, server);
                }
            } else {
                let _ = front.send_to(&d.data, d.client);
            }
            false
        });
        std::thread::sleep(Duration::from_micros(500));
    }
}
