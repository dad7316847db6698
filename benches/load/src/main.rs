//! `carecall-load`: runs the load scenarios against a carecall server (one it
//! starts on loopback, or one already running) and prints a summary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use carecall_admin::sql::temp_postgres::TempPostgres;
use carecall_load::hub_ca::HubCa;
use carecall_load::proc::Pinning;
use carecall_load::{Options, Report, Scenario, Sfu, Target};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "carecall-load",
    about = "Load a carecall server with non-browser participants sending a real clip, and measure what it forwards"
)]
struct Cli {
    /// The carecall binary to start on loopback (default: the one beside
    /// this tool). Ignored with --url.
    #[arg(long, global = true)]
    server: Option<PathBuf>,
    /// A running server's base URL instead (loopback only); needs --secret
    /// and --pid.
    #[arg(long, global = true, requires_all = ["secret", "pid"])]
    url: Option<String>,
    /// That server's link secret.
    #[arg(
        long,
        global = true,
        env = "CARECALL_LINK_SECRET",
        hide_env_values = true
    )]
    secret: Option<String>,
    /// That server's process id (for its CPU and memory).
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Measured seconds per scenario (1-300).
    #[arg(long, global = true, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of media before measuring.
    #[arg(long, global = true, default_value_t = 3.0)]
    warmup: f64,
    /// Print the reports as JSON (one array) instead of the summary.
    #[arg(long, global = true)]
    json: bool,
    /// Run each server this tool starts on core 0 and the tool itself on
    /// the other cores (taskset), so the load peers measure the server
    /// instead of competing with it.
    #[arg(long, global = true)]
    pin: bool,
    /// Viewers on str0m, many to one task, instead of one webrtc-rs peer
    /// each: far lighter, so a large fan-out measures the server rather
    /// than its viewers (carecall and Janus; publishers stay on webrtc-rs).
    #[arg(long, global = true)]
    lite_viewers: bool,
    /// Publishers on str0m too, many to one task, sending the same clip in
    /// the same three layers: so 50 and 100 rooms of 3 measure the server
    /// rather than the load tool (carecall and Janus).
    #[arg(long, global = true)]
    lite_publishers: bool,
    /// Load Janus (Debian's `janus`, VideoRoom plugin) instead of carecall:
    /// started in a network namespace of its own (needs root) with the
    /// configuration in `benches/janus/`. With --url: carecall only.
    #[arg(long, global = true)]
    janus: bool,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// One publisher, N subscribers.
    Fanout {
        #[arg(default_value_t = 50)]
        subscribers: usize,
        /// Subscribers show the publisher as a thumbnail (sent the lowest
        /// simulcast layer) instead of a large tile (the top layer).
        #[arg(long)]
        thumbnails: bool,
    },
    /// N calls of three, everyone publishing.
    Rooms {
        #[arg(default_value_t = 10)]
        rooms: usize,
    },
    /// Fan-out to 50, then 10 rooms of 3.
    All,
    /// N rooms of 3 on one node, then the same rooms spanning two nodes
    /// (home and clinician on the first, the specialist on the second,
    /// their relays linked over QUIC), side by side: what the relay
    /// carried and the latency it added (carecall only; starts a
    /// throwaway PostgreSQL, which needs root, as the tests do).
    Span {
        #[arg(long, default_value_t = 10)]
        rooms: usize,
    },
    /// Calls of two joining, sending a second of media and leaving, round
    /// after round (carecall only).
    Churn {
        /// Rounds.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Participants per round.
        #[arg(long, default_value_t = 20)]
        participants: usize,
    },
    /// Rooms of three joining, talking and leaving for MINUTES while the
    /// check page and sign-in are hammered from many loopback addresses;
    /// the server's memory, file descriptors, threads and tasks every ten
    /// minutes (carecall only; not in CI).
    Soak {
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
    },
    /// The same scenarios against carecall and against Janus, one after the
    /// other, and a table of the ratios.
    Compare {
        /// Fan-out sizes (subscribers), comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [50usize])]
        fanout: Vec<usize>,
        /// Fan-out sizes whose subscribers show the publisher as a
        /// thumbnail (the lowest layer), comma-separated.
        #[arg(long, value_delimiter = ',')]
        thumbnails: Vec<usize>,
        /// Numbers of rooms of 3, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [10usize])]
        rooms: Vec<usize>,
        /// Runs of each scenario, carecall and Janus in turn (1-5): the
        /// machine's noise shows as the spread between them.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
        runs: u8,
    },
}

/// A server this tool started, stopped when dropped.
struct Spawned {
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn random_secret() -> Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness from the operating system"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts `carecall serve` on loopback with a fresh data directory.
fn spawn(binary: PathBuf, pinning: Pinning) -> Result<(Spawned, Target)> {
    spawn_node(binary, pinning, &random_secret()?, &[])
}

/// Two carecall nodes on one throwaway PostgreSQL, their relays linked by
/// certificates from a CA made here, sharing a link secret: the second is
/// the first's `far` node.
fn spawn_pair(binary: PathBuf, pinning: Pinning) -> Result<(Vec<Spawned>, TempPostgres, Target)> {
    let postgres = TempPostgres::start();
    let hub = HubCa::new()?;
    let secret = random_secret()?;
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let mut env = hub.node_env(name)?;
        env.push(("CARECALL_DATABASE_URL", postgres.url()));
        nodes.push(spawn_node(binary.clone(), pinning, &secret, &env)?);
    }
    let (b, far) = nodes.pop().context("node b")?;
    let (a, mut target) = nodes.pop().context("node a")?;
    target.far = Some(Box::new(far));
    Ok((vec![a, b], postgres, target))
}

/// Starts `carecall serve` on loopback with a fresh data directory, link
/// secret `secret` and more settings in `env`.
fn spawn_node(
    binary: PathBuf,
    pinning: Pinning,
    secret: &str,
    env: &[(&str, String)],
) -> Result<(Spawned, Target)> {
    let data = tempfile::tempdir().context("a temporary data directory")?;
    let secret = secret.to_owned();
    let command = pinning.server_command(&binary);
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--data-dir",
        ])
        .arg(data.path())
        .env("CARECALL_LINK_SECRET", &secret)
        .env("CARECALL_MEDIA_ANNOUNCE", "127.0.0.1")
        .env("CARECALL_MEDIA_TCP_PORT", "0")
        .env("CARECALL_TURN_ENABLED", "false")
        // Every load peer connects from 127.0.0.1: the per-address limit
        // for strangers would stop a fan-out at 64.
        .env("CARECALL_LIMITS_HTTP_CONNECTIONS_PER_ADDRESS", "100000")
        // Off, as Janus does not estimate: every subscriber is sent the
        // layer it asks for, so both servers do the same work. On, the
        // layers move with each viewer's estimate as it ramps up.
        .env("CARECALL_MEDIA_BANDWIDTH_ESTIMATION", "false")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let pid = child.id();
    let spawned = Spawned { child, _data: data };
    let mut lines = BufReader::new(stdout).lines();
    let base_url = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("carecall listening on ") {
                    break url.trim().to_owned();
                }
            }
            _ => bail!("{} stopped before it listened", binary.display()),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((
        spawned,
        Target {
            sfu: Sfu::Carecall,
            base_url,
            secret: secret.into_bytes(),
            pid,
            local_ip: [127, 0, 0, 1].into(),
            far: None,
        },
    ))
}

/// The comparison table: carecall's and Janus's figures per scenario.
fn comparison(pairs: &[(Report, Report)]) -> String {
    let mut out = String::from(
        "| Scenario | Packets/s (carecall / Janus) | CPU s per 10^6 packets (carecall / Janus) | Janus ÷ carecall | Memory per participant KiB (carecall / Janus) | Latency p50/p99 ms (carecall / Janus) | Loss (carecall / Janus) | Load tool sent (carecall / Janus) | Load tool CPU, % of a core (carecall / Janus) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (c, j) in pairs {
        out.push_str(&format!(
            "| {} | {:.0} / {:.0} | {:.2} / {:.2} | {:.2}x | {:.0} / {:.0} | {:.2}/{:.2} / {:.2}/{:.2} | {:.3}% / {:.3}% | {:.1}% / {:.1}% | {:.0} / {:.0} |\n",
            c.scenario,
            c.forwarded_per_second,
            j.forwarded_per_second,
            c.cpu_seconds_per_million_packets,
            j.cpu_seconds_per_million_packets,
            j.cpu_seconds_per_million_packets / c.cpu_seconds_per_million_packets.max(1e-9),
            c.rss_per_participant_kib,
            j.rss_per_participant_kib,
            c.latency_p50_ms,
            c.latency_p99_ms,
            j.latency_p50_ms,
            j.latency_p99_ms,
            100.0 * c.loss,
            100.0 * j.loss,
            100.0 * c.generator_kept_up,
            100.0 * j.generator_kept_up,
            c.generator_cpu_percent,
            j.generator_cpu_percent,
        ));
    }
    out
}

/// One node beside two spanned by the relay, for the same rooms.
fn span_table(one: &Report, two: &Report) -> String {
    let mut out = String::from("| | One node | Two nodes, relayed |\n|---|---|---|\n");
    let mut row = |what: &str, a: String, b: String| {
        out.push_str(&format!("| {what} | {a} | {b} |\n"));
    };
    row(
        "Forwarded packets/s",
        format!("{:.0}", one.forwarded_per_second),
        format!("{:.0}", two.forwarded_per_second),
    );
    row(
        "Server CPU s per 10^6 packets (all nodes)",
        format!("{:.2}", one.cpu_seconds_per_million_packets),
        format!("{:.2}", two.cpu_seconds_per_million_packets),
    );
    row(
        "Specialist's streams latency p50 / p99, ms",
        format!(
            "{:.2} / {:.2}",
            one.specialist_latency_p50_ms, one.specialist_latency_p99_ms
        ),
        format!(
            "{:.2} / {:.2}",
            two.specialist_latency_p50_ms, two.specialist_latency_p99_ms
        ),
    );
    row(
        "Relayed packets/s (Mbit/s)",
        "-".into(),
        format!(
            "{:.0} ({:.2})",
            two.relay_packets_per_second,
            two.relay_bits_per_second / 1e6
        ),
    );
    row(
        "Loss",
        format!("{:.3}%", 100.0 * one.loss),
        format!("{:.3}%", 100.0 * two.loss),
    );
    out.push_str(&format!(
        "\nThe relay added {:+.2} ms at p50 and {:+.2} ms at p99 to the specialist's streams.\n",
        two.specialist_latency_p50_ms - one.specialist_latency_p50_ms,
        two.specialist_latency_p99_ms - one.specialist_latency_p99_ms
    ));
    out
}

/// Each scenario's spread over interleaved runs: the lowest and highest
/// CPU per 10^6 packets, ratio and memory per participant.
fn spread(pairs: &[(Report, Report)]) -> String {
    let mut out = String::from(
        "| Scenario | Runs | CPU s per 10^6 packets, carecall | Janus | Janus ÷ carecall | Memory per participant KiB, carecall | Janus |\n|---|---|---|---|---|---|---|\n",
    );
    let mut scenarios: Vec<&str> = pairs.iter().map(|(c, _)| c.scenario.as_str()).collect();
    scenarios.dedup();
    for scenario in scenarios {
        let runs: Vec<&(Report, Report)> = pairs
            .iter()
            .filter(|(c, _)| c.scenario == scenario)
            .collect();
        let range = |f: &dyn Fn(&(Report, Report)) -> f64, digits: usize| {
            let values = runs.iter().map(|p| f(p));
            let low = values.clone().fold(f64::INFINITY, f64::min);
            let high = values.fold(f64::NEG_INFINITY, f64::max);
            format!("{low:.digits$}-{high:.digits$}")
        };
        out.push_str(&format!(
            "| {scenario} | {} | {} | {} | {}x | {} | {} |\n",
            runs.len(),
            range(&|(c, _)| c.cpu_seconds_per_million_packets, 2),
            range(&|(_, j)| j.cpu_seconds_per_million_packets, 2),
            range(
                &|(c, j)| j.cpu_seconds_per_million_packets
                    / c.cpu_seconds_per_million_packets.max(1e-9),
                2
            ),
            range(&|(c, _)| c.rss_per_participant_kib, 0),
            range(&|(_, j)| j.rss_per_participant_kib, 0),
        ));
    }
    out
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let options = Options {
        seconds: cli.seconds,
        warmup: cli.warmup,
        progress: !cli.json,
        lite_viewers: cli.lite_viewers,
        lite_publishers: cli.lite_publishers,
    };
    let pinning = match cli.pin {
        true => Pinning::Apart,
        false => Pinning::Shared,
    };
    pinning.pin_tool()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let carecall_binary = || -> Result<PathBuf> {
        Ok(match &cli.server {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.with_file_name("carecall"),
        })
    };
    if let What::Compare {
        fanout,
        thumbnails,
        rooms,
        runs,
    } = &cli.what
    {
        let scenarios: Vec<Scenario> = fanout
            .iter()
            .map(|&subscribers| Scenario::FanOut { subscribers })
            .chain(
                thumbnails
                    .iter()
                    .map(|&subscribers| Scenario::Thumbnails { subscribers }),
            )
            .chain(rooms.iter().map(|&rooms| Scenario::Rooms { rooms }))
            .collect();
        let mut pairs = Vec::new();
        for scenario in scenarios {
            for run in 1..=*runs {
                // A fresh server of each kind per run: no leftovers measured.
                let (_c, carecall) = spawn(carecall_binary()?, pinning)?;
                eprintln!("carecall, {scenario:?}, run {run} of {runs} ...");
                let c = runtime.block_on(carecall_load::run(&carecall, scenario, &options))?;
                drop(_c);
                let (_j, janus) = carecall_load::janus::spawn(pinning)?;
                eprintln!("Janus, {scenario:?}, run {run} of {runs} ...");
                let j = runtime.block_on(carecall_load::run(&janus, scenario, &options))?;
                drop(_j);
                pairs.push((c, j));
            }
        }
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&pairs)?);
        } else {
            for (c, j) in &pairs {
                println!("carecall {c}\nJanus {j}\n");
            }
            print!("{}", comparison(&pairs));
            if *runs > 1 {
                print!("\n{}", spread(&pairs));
            }
        }
        return Ok(());
    }
    if let What::Span { rooms } = cli.what {
        let scenario = Scenario::Rooms { rooms };
        let (one, one_target) = spawn(carecall_binary()?, pinning)?;
        eprintln!("{rooms} rooms of 3 on one node ...");
        let single = runtime.block_on(carecall_load::run(&one_target, scenario, &options))?;
        drop(one);
        let (two, postgres, two_target) = spawn_pair(carecall_binary()?, pinning)?;
        eprintln!("{rooms} rooms of 3 spanning two nodes ...");
        let spanning = runtime.block_on(carecall_load::run(&two_target, scenario, &options))?;
        // The nodes first: they write to the database until they stop.
        drop(two);
        drop(postgres);
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&[&single, &spanning])?);
        } else {
            println!("one node {single}\n\ntwo nodes {spanning}\n");
            print!("{}", span_table(&single, &spanning));
        }
        return Ok(());
    }
    let scenarios = match cli.what {
        What::Fanout {
            subscribers,
            thumbnails: false,
        } => vec![Scenario::FanOut { subscribers }],
        What::Fanout {
            subscribers,
            thumbnails: true,
        } => vec![Scenario::Thumbnails { subscribers }],
        What::Rooms { rooms } => vec![Scenario::Rooms { rooms }],
        What::All => vec![
            Scenario::FanOut { subscribers: 50 },
            Scenario::Rooms { rooms: 10 },
        ],
        What::Compare { .. } | What::Span { .. } => unreachable!("handled above"),
        What::Churn { .. } | What::Soak { .. } => Vec::new(),
    };
    let mut _janus = None;
    let (_spawned, target) = match cli.url.clone() {
        Some(url) => {
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or("")
                .split([':', '/'])
                .next()
                .unwrap_or("");
            if !(host.starts_with("127.") || host == "localhost" || host == "[::1]") {
                bail!("load runs against loopback only, not {url}");
            }
            let target = Target {
                sfu: Sfu::Carecall,
                base_url: url,
                secret: cli.secret.clone().unwrap_or_default().into_bytes(),
                pid: cli.pid.unwrap_or_default(),
                local_ip: [127, 0, 0, 1].into(),
                far: None,
            };
            (None, target)
        }
        None if cli.janus => {
            let (s, t) = carecall_load::janus::spawn(pinning)?;
            _janus = Some(s);
            (None, t)
        }
        None => {
            let (s, t) = spawn(carecall_binary()?, pinning)?;
            (Some(s), t)
        }
    };
    if let What::Soak { minutes } = cli.what {
        let report = runtime.block_on(carecall_load::soak(&target, minutes))?;
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{report}");
        }
        return Ok(());
    }
    if let What::Churn {
        rounds,
        participants,
    } = cli.what
    {
        let report = runtime.block_on(carecall_load::churn(&target, rounds, participants))?;
        if cli.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{report}");
        }
        return Ok(());
    }
    let mut reports: Vec<Report> = Vec::new();
    for scenario in scenarios {
        if !cli.json {
            eprintln!("running {scenario:?} against {} ...", target.base_url);
        }
        reports.push(runtime.block_on(carecall_load::run(&target, scenario, &options))?);
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            println!("{r}");
        }
    }
    Ok(())
}
