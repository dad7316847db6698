//! Poor networks for browsers, made by the test itself: a network namespace
//! joined to the host by a veth pair, with a rate limit (`tc tbf`), random
//! loss (`iptables -m statistic`) and, through [`DelayRelay`], delay and
//! jitter. Everything is created under a name unique to this process and
//! removed on drop, even when the test fails. Needs root (CAP_NET_ADMIN); without
//! it, creating a [`NetNs`] fails the test with the system's own error.
//!
//! Only addresses the test assigns are used: `10.X.K.1` on the host end,
//! `10.X.K.2` in the namespace, a /30 no other link on the host has and no
//! other live test holds (see [`claim_subnet`]).
//!
//! A test process that is killed (a timeout, a stopped run) leaves its
//! namespace, its link and whatever browser ran in it behind. The next
//! process to make a namespace removes those of processes that are gone
//! ([`reap_leftovers`]); until then their addresses are avoided. A leftover
//! link on the same /30 as a new test's once took the host's replies to the
//! new namespace, and a browser there waited forever for its first page.
//!
//! [`DelayRelay`]: super::relay::DelayRelay

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

/// One emulated home network: a namespace with a veth link to the host.
pub struct NetNs {
    /// The namespace's name (for `ip netns exec`).
    pub name: String,
    host_if: String,
    ns_if: String,
    /// The host end of the link: the namespace reaches the host (and the
    /// server) through it.
    pub host_ip: Ipv4Addr,
    /// The namespace end of the link.
    pub ns_ip: Ipv4Addr,
    /// NAT rules added on the host, removed on drop.
    host_rules: Vec<(String, Vec<String>)>,
    /// Host ends of links added by [`NetNs::move_to_new_link`].
    extra_links: Vec<String>,
    /// This test's hold on its /30 (and the one 128 above it).
    _subnet: std::fs::File,
}

/// Runs a command, panicking with its own error output when it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl NetNs {
    /// Creates the namespace and its link, both ends up, the host as its
    /// default route.
    pub fn new() -> NetNs {
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(reap_leftovers);
        let pid = std::process::id();
        let (x, k, subnet) = claim_subnet();
        let name = format!("cc{pid}n{k}x{x}");
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "cannot create a network namespace (these tests need root or \
                 CAP_NET_ADMIN): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("cannot run `ip` (apt-get install iproute2): {e}"),
        }
        let ns = NetNs {
            host_if: link_name(x, k, 'h'),
            ns_if: link_name(x, k, 'v'),
            host_ip: Ipv4Addr::new(10, x, k, 1),
            ns_ip: Ipv4Addr::new(10, x, k, 2),
            name,
            host_rules: Vec::new(),
            extra_links: Vec::new(),
            _subnet: subnet,
        };
        let (h, n) = (ns.host_if.as_str(), ns.ns_if.as_str());
        run("ip", &["link", "add", h, "type", "veth", "peer", "name", n]);
        run("ip", &["link", "set", n, "netns", &ns.name]);
        run(
            "ip",
            &["addr", "add", &format!("{}/30", ns.host_ip), "dev", h],
        );
        run("ip", &["link", "set", h, "up"]);
        ns.exec(&["ip", "addr", "add", &format!("{}/30", ns.ns_ip), "dev", n]);
        ns.exec(&["ip", "link", "set", n, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        let gateway = ns.host_ip.to_string();
        ns.exec(&["ip", "route", "add", "default", "via", &gateway]);
        ns
    }

    /// Takes the namespace off its link: its address is removed and the
    /// link goes down, as when a tablet leaves a Wi-Fi network. The host end
    /// (and the server's address on it) stays.
    pub fn unplug(&self) {
        self.exec(&["ip", "addr", "flush", "dev", &self.ns_if]);
        self.exec(&["ip", "link", "set", &self.ns_if, "down"]);
    }

    /// Puts the namespace on a second link with a new address
    /// (`10.X.K+128.2`), routed to the host: the tablet joined another
    /// network. Returns the new address; `ns_ip` becomes it.
    pub fn move_to_new_link(&mut self) -> Ipv4Addr {
        let k = self.ns_ip.octets()[2] + 128;
        let [a, x, _, _] = self.host_ip.octets();
        let host_if = link_name(x, k, 'H');
        let ns_if = link_name(x, k, 'V');
        let host_ip = Ipv4Addr::new(a, x, k, 1);
        let ns_ip = Ipv4Addr::new(a, x, k, 2);
        run(
            "ip",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
            ],
        );
        self.extra_links.push(host_if.clone());
        run("ip", &["link", "set", &ns_if, "netns", &self.name]);
        run(
            "ip",
            &["addr", "add", &format!("{host_ip}/30"), "dev", &host_if],
        );
        run("ip", &["link", "set", &host_if, "up"]);
        self.exec(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        self.exec(&["ip", "link", "set", &ns_if, "up"]);
        self.exec(&[
            "ip",
            "route",
            "replace",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        self.ns_ip = ns_ip;
        ns_ip
    }

    /// A port on the host's loopback that reaches `port` on the namespace's
    /// own loopback. The test drives a browser in the namespace through it,
    /// so it keeps control whatever happens to the namespace's links.
    pub fn loopback_bridge(&self, port: u16) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bridge port");
        let addr = listener.local_addr().expect("bridge address");
        let ns = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let ns = ns.clone();
                std::thread::spawn(move || {
                    if let Some(inside) = connect_inside(&ns, port) {
                        splice(conn, inside);
                    }
                });
            }
        });
        addr
    }

    /// Drops all UDP in and out of the namespace, as guest Wi-Fi often does.
    pub fn block_udp(&self) {
        for chain in ["OUTPUT", "INPUT"] {
            self.exec(&["iptables", "-A", chain, "-p", "udp", "-j", "DROP"]);
        }
    }

    /// Cuts everything in and out of the namespace (`true`) or restores it,
    /// except chromedriver's port and loopback, so the test can still drive
    /// the browser.
    pub fn outage(&self, on: bool) {
        let op = if on { "-I" } else { "-D" };
        // Inserted in reverse: the exceptions end up first.
        for chain in ["INPUT", "OUTPUT"] {
            self.exec(&["iptables", op, chain, "-j", "DROP"]);
        }
        self.exec(&[
            "iptables", op, "INPUT", "-p", "tcp", "--dport", "9515", "-j", "ACCEPT",
        ]);
        self.exec(&[
            "iptables", op, "OUTPUT", "-p", "tcp", "--sport", "9515", "-j", "ACCEPT",
        ]);
        // Chromium and chromedriver talk over loopback inside the namespace.
        self.exec(&["iptables", op, "INPUT", "-i", "lo", "-j", "ACCEPT"]);
        self.exec(&["iptables", op, "OUTPUT", "-o", "lo", "-j", "ACCEPT"]);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Limits what reaches the namespace (the browser's download) to `kbit`
    /// per second; `None` lifts the limit.
    pub fn limit_downlink(&self, kbit: Option<u32>) {
        shape(&[], &self.host_if, kbit, SHORT_QUEUE_MS);
    }

    /// Limits what leaves the namespace (the browser's upload).
    pub fn limit_uplink(&self, kbit: Option<u32>) {
        self.limit_uplink_queueing(kbit, SHORT_QUEUE_MS);
    }

    /// Limits the upload as [`NetNs::limit_uplink`] does, holding up to
    /// `queue_ms` of it waiting (a home router with a deep buffer: the
    /// round trip rises to about that while the tablet uploads).
    pub fn limit_uplink_queueing(&self, kbit: Option<u32>, queue_ms: u32) {
        let prefix = ["ip", "netns", "exec", &self.name];
        shape(&prefix, &self.ns_if, kbit, queue_ms);
    }

    /// Drops this share (0.0-1.0) of the packets arriving in the namespace
    /// over its link (its own loopback, where the browser's driver talks,
    /// is left alone).
    pub fn downlink_loss(&self, share: f64) {
        self.random_loss("INPUT", share);
    }

    /// Drops this share (0.0-1.0) of the UDP packets the namespace sends
    /// to the host: the browser's media upload (its TCP, the page's
    /// requests, is left alone). Dropped on the host's side of the link, as
    /// a network would: a packet dropped in the namespace's own OUTPUT chain
    /// fails the browser's send, and the browser sends it again, so nothing
    /// is lost.
    pub fn uplink_loss(&mut self, share: f64) {
        let rule: Vec<String> = [
            "INPUT",
            "-i",
            &self.host_if,
            "-p",
            "udp",
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &format!("{share:.3}"),
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.host_rule("filter", rule);
    }

    /// Adds `rule` to the host's `table`, taken out again when the
    /// namespace goes.
    fn host_rule(&mut self, table: &str, rule: Vec<String>) {
        let mut add = vec!["-t", table, "-A"];
        add.extend(rule.iter().map(String::as_str));
        run("iptables", &add);
        self.host_rules.push((table.to_owned(), rule));
    }

    /// Drops `share` of the packets `chain` sees in the namespace,
    /// replacing any earlier rule.
    fn random_loss(&self, chain: &str, share: f64) {
        self.exec(&["iptables", "-F", chain]);
        if share > 0.0 {
            let p = format!("{share:.3}");
            let mut rule = vec!["iptables", "-A", chain, "!", "-i", "lo"];
            rule.extend_from_slice(&[
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ]);
            self.exec(&rule);
        }
    }

    /// Sends the namespace's UDP to `to` through `via` instead (a
    /// [`super::relay::DelayRelay`] on the host). Must be set before the
    /// call: NAT applies to new flows only.
    pub fn redirect_udp(&mut self, to: SocketAddr, via: SocketAddr) {
        let rule: Vec<String> = [
            "PREROUTING",
            "-i",
            &self.host_if,
            "-p",
            "udp",
            "-d",
            &to.ip().to_string(),
            "--dport",
            &to.port().to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &via.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.host_rule("nat", rule);
    }
}

/// The name of a link on subnet `10.X.K.0/30`: `end` is `h` (host) or `v`
/// (namespace), `H` and `V` for the second link. Unique while the subnet
/// is held, and known to the reaper from the namespace's name.
fn link_name(x: u8, k: u8, end: char) -> String {
    format!("cc{x}k{k}{end}")
}

/// Where tests hold their subnets: one lock file per /30.
fn subnet_locks() -> std::path::PathBuf {
    std::env::temp_dir().join("carecall-netlab")
}

/// A `10.X.K.0/30` for a new namespace, with `K + 128` free for
/// [`NetNs::move_to_new_link`]: one no link on the host has an address in
/// and no live test holds. The hold is a lock on a file, so a killed test's
/// goes with it; its leftover link, if any, keeps its /30 out of use.
fn claim_subnet() -> (u8, u8, std::fs::File) {
    let dir = subnet_locks();
    std::fs::create_dir_all(&dir).expect("subnet lock dir");
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip addr");
    let in_use = String::from_utf8_lossy(&out.stdout).into_owned();
    let taken = |x: u8, k: u8| in_use.contains(&format!(" 10.{x}.{k}."));
    // Start where the process id points, so parallel tests rarely contend.
    let start = std::process::id() as usize;
    for i in 0..100 * 128 {
        let n = (start + i) % (100 * 128);
        let (x, k) = (100 + (n % 100) as u8, (n / 100) as u8);
        if taken(x, k) || taken(x, k + 128) {
            continue;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("10.{x}.{k}")))
            .expect("subnet lock file");
        if file.try_lock().is_ok() {
            return (x, k, file);
        }
    }
    panic!("no free 10.X.K.0/30 for a test network (are 12,800 tests running?)");
}

/// Removes what killed test processes left: their namespaces (with the
/// browsers still running in them, and so their links) and the host's NAT
/// rules for those links. Only namespaces named by this module whose
/// process is gone are touched.
fn reap_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in list.split_whitespace().filter(|w| w.starts_with("cc")) {
        use carecall_admin::sql::temp_postgres::left_by_gone_process;
        let Some(pid) = left_by_gone_process(name, "cc", 'n') else {
            continue;
        };
        eprintln!("removing test network {name}, left by process {pid}, which is gone");
        if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
            for p in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", p]).output();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        // Its host rules (NAT for a relay, filter for upload loss) name its
        // host links, which its subnet names.
        let Some((k, x)) = name
            .split_once('n')
            .and_then(|(_, rest)| rest.split_once('x'))
            .and_then(|(k, x)| Some((k.parse::<u8>().ok()?, x.parse::<u8>().ok()?)))
        else {
            continue;
        };
        let links = [link_name(x, k, 'h'), link_name(x, k.wrapping_add(128), 'H')];
        for table in ["nat", "filter"] {
            let Ok(rules) = Command::new("iptables").args(["-t", table, "-S"]).output() else {
                continue;
            };
            for rule in String::from_utf8_lossy(&rules.stdout).lines() {
                let theirs = rule
                    .split_whitespace()
                    .any(|w| links.iter().any(|l| w == l));
                if let (true, Some(rest)) = (theirs, rule.strip_prefix("-A ")) {
                    let mut del = vec!["-t", table, "-D"];
                    del.extend(rest.split_whitespace());
                    let _ = Command::new("iptables").args(&del).output();
                }
            }
        }
    }
}

/// Moves this thread into the namespace at `ns` (a thread of its own, it
/// stays there) and connects to `port` on its loopback, waiting up to 20 s
/// for something to listen.
fn connect_inside(ns: &str, port: u16) -> Option<std::net::TcpStream> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(ns).ok()?;
    // SAFETY: setns on a valid namespace file descriptor only changes this
    // thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return None;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return Some(s),
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(_) => return None,
        }
    }
}

/// Copies bytes both ways between two connections until either closes.
fn splice(a: std::net::TcpStream, b: std::net::TcpStream) {
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let (mut a, mut b) = (a, b);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// How much a limited link holds waiting, unless a test says otherwise.
const SHORT_QUEUE_MS: u32 = 300;

/// Puts a token bucket on `dev` (run under `prefix`) holding up to
/// `queue_ms` waiting, or removes it.
fn shape(prefix: &[&str], dev: &str, kbit: Option<u32>, queue_ms: u32) {
    let mut args: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    args.extend(["tc", "qdisc"].map(String::from));
    match kbit {
        Some(kbit) => {
            // Burst: two full-size packets. A bigger bucket lets a short
            // probe through at line rate, and the sender overestimates the
            // link, which a care home's Wi-Fi would never allow.
            let burst = 2 * 1514;
            args.extend(["replace", "dev", dev, "root", "tbf", "rate"].map(String::from));
            args.push(format!("{kbit}kbit"));
            args.extend(["burst".into(), burst.to_string()]);
            args.extend(["latency".into(), format!("{queue_ms}ms")]);
        }
        None => args.extend(["del", "dev", dev, "root"].map(String::from)),
    }
    let (program, rest) = args.split_first().expect("a command");
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    if kbit.is_none() {
        // Removing a limit that is not there is fine.
        let _ = Command::new(program).args(&rest).output();
    } else {
        run(program, &rest);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for (table, rule) in &self.host_rules {
            let mut del = vec!["-t", table.as_str(), "-D"];
            del.extend(rule.iter().map(String::as_str));
            let _ = Command::new("iptables").args(&del).output();
        }
        // Deleting the namespace deletes its veth end, and with it the pair.
        for link in std::iter::once(&self.host_if).chain(&self.extra_links) {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
