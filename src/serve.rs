//! `carecall serve`: build the three planes and wire them.

use std::time::Duration;

use anyhow::Context;
use carecall_admin::{Accounts, AdminOptions, AdminState, CallLog, RecordingAccess};
use carecall_sfu::{default_announce_addrs, MediaConfig, MediaServer};
use carecall_signalling::{AppState, CallEvent, JoinClaims, LinkSigner, RecordingPolicy, Role};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::Config;
use crate::shutdown::CARRY_OVER_FOR;

/// Runs the hub on `config`, read from `file` (read again on SIGHUP).
pub fn serve(mut config: Config, file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    // As read, before binding fills in ports: what a reload compares with.
    let as_loaded = config.clone();
    refuse_start("carecall", config.limits.problems())?;
    refuse_start("production mode", config.production_problems())?;
    // One crypto provider for every TLS client and server in the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secret = crate::secret::link_secret(config.link_secret.as_deref(), &config.data_dir)?;
    // One server per data directory; `carecall restore` checks it too.
    let _lock = lock_data_dir(&config.data_dir)?;
    // Bound first: with port 0 the real port is known before anything puts
    // the base URL into a link.
    let http = std::net::TcpListener::bind(config.http_addr)
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    http.set_nonblocking(true)?;
    config.http_addr = http.local_addr()?;
    let https = if config.https.enabled {
        let listener = std::net::TcpListener::bind(config.https.addr)
            .with_context(|| format!("binding HTTPS on {}", config.https.addr))?;
        listener.set_nonblocking(true)?;
        config.https.addr = listener.local_addr()?;
        Some((listener, https_certs(&config)?))
    } else {
        None
    };
    let database = config.database();
    let record_key = config.record_key()?;
    let mut hook_options = config.hook_options()?;
    hook_options.seal = Some(record_key.clone());
    let accounts = std::sync::Arc::new(Accounts::connect(&database)?);
    let checks = carecall_admin::check::Checks::connect(&database)?;
    let zone = jiff::tz::TimeZone::get(&config.timezone)
        .with_context(|| format!("timezone {:?}: not a known time zone", config.timezone))?;
    // The service hours in force; a reload (SIGHUP) replaces them.
    let hours =
        carecall_admin::service_hours::LiveHours::new(config.service_hours.hours(zone.clone())?);
    // Events are written with every call-log change from here on, also for
    // sessions a crash left open; delivery starts with the runtime.
    let hook_wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let recording_key = config.recording_key()?;
    let downloads = carecall_admin::DownloadLinks::new(
        &config.base_url(),
        &secret,
        Duration::from_secs(config.recording.download_hours.max(1) * 3600),
    );
    // The receivers in force; a reload (SIGHUP) changes them.
    let receivers = carecall_admin::hooks::LiveReceivers::new(hook_options);
    let hook_targets = carecall_admin::hooks::HookTargets {
        endpoints: receivers.urls(),
        hours: Some(hours.clone()),
        downloads: Some(downloads.clone()),
        seal: Some(record_key.clone()),
    };
    // This node's name among the hub's nodes, kept in the data directory.
    let node = crate::secret::node_id(&config.data_dir)?;
    let connect = || -> anyhow::Result<CallLog> {
        Ok(CallLog::connect(&database)?
            .with_node(&node)
            .with_hooks(hook_targets.clone(), Some(hook_wake.clone())))
    };
    let call_log = connect()?;
    // The admin plane's own connection writes the queue's events.
    let history = connect()?;
    let stale_recordings = call_log.close_stale_recordings()?;
    if stale_recordings > 0 {
        tracing::warn!(
            stale_recordings,
            "recordings cut off by the previous run marked failed"
        );
    }
    let retention_log = connect()?;
    let heartbeat_log = connect()?;
    // Rooms are placed across nodes only where several can share the
    // records: one node on SQLite hosts every room.
    if matches!(database, carecall_admin::sql::Database::Postgres(_)) && config.public_url.is_none()
    {
        tracing::warn!(
            url = %config.base_url(),
            "public_url is not set: other nodes send browsers to this node at its HTTP address; set public_url to the address browsers reach it at"
        );
    }
    // Rooms that span this node and others (docs/scaling.md).
    let relay = config.relay.settings()?;
    let placer = match &database {
        carecall_admin::sql::Database::Postgres(_) => Some(std::sync::Arc::new(
            crate::placement::DatabasePlacer::new(connect()?, relay.is_some()),
        )),
        carecall_admin::sql::Database::Sqlite(_) => None,
    };
    let retention = Duration::from_secs(config.recording.retention_days.max(1) * 86_400);
    std::thread::Builder::new()
        .name("recording-retention".into())
        .spawn(move || enforce_retention(retention_log, retention))
        .context("starting recording retention")?;
    // Sessions a stop left for their browsers to resume (a restart takes
    // seconds; the browsers wait up to two minutes), in the same calls.
    // On a shared database, a node killed and started again by its service
    // manager (2 s) is back before another node would take its calls
    // over (6 s): its browsers resume here.
    let crashed = call_log.park_after_crash()?;
    if crashed > 0 {
        tracing::info!(
            sessions = crashed,
            "holding calls cut by this node's crash for their browsers"
        );
    }
    let carried = call_log.take_carried(std::time::SystemTime::now(), CARRY_OVER_FOR)?;
    let stale = call_log.close_stale_sessions(&carried)?;
    // Above every id this and any other node of the hub gave out.
    let first_participant =
        call_log.node_started(&config.base_url(), std::time::SystemTime::now())?;
    let consents = call_log.consents_of_open_calls()?;
    if stale > 0 {
        tracing::info!(
            stale,
            "closed call-log sessions left open by the previous run"
        );
    }

    let announce = if config.media.announce.is_empty() {
        default_announce_addrs()
    } else {
        config.media.announce.clone()
    };
    let workers = match config.media.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let relays = carecall_sfu::turn::RelayBook::default();
    let media = MediaServer::start(&MediaConfig {
        announce,
        port: config.media.port,
        tcp_port: config.media.ice_tcp.then_some(config.media.tcp_port),
        workers,
        estimate_bandwidth: config.media.bandwidth_estimation,
        relays: Some(relays.clone()),
        relay,
    })
    .context("starting the media plane")?;
    if let (Some(addr), Some(name)) = (media.relay_addr(), &config.relay.name) {
        let reached = config.relay.public_addr.unwrap_or(addr);
        call_log.node_relay(&reached.to_string(), name)?;
        tracing::info!(relay = %reached, name, "rooms may span this node and the hub's others");
    }
    let refusals = carecall_sfu::Refusals::default();
    let turn_failures = carecall_sfu::turn::TurnFailures::default();
    // The limits in force; a reload (SIGHUP) changes them.
    let limits = crate::config::LiveLimits::new(&config.limits);
    let turn = crate::turn::start(
        &config,
        &media,
        relays,
        limits.turn.clone(),
        refusals.clone(),
        turn_failures.clone(),
    )?;

    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let parked = std::sync::Arc::new(tokio::sync::Notify::new());
    let parked_by_writer = parked.clone();
    let image_metrics = carecall_admin::ImageMetrics::default();
    let images_counted = image_metrics.clone();
    let tally = carecall_signalling::EventTally::default();
    let writer_tally = tally.clone();
    std::thread::Builder::new()
        .name("call-log".into())
        .spawn(move || {
            record_calls(
                call_log,
                events_rx,
                &writer_tally,
                &parked_by_writer,
                &images_counted,
            )
        })
        .context("starting the call-log writer")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // SIGHUP (`systemctl reload`) never ends the process, even one sent
        // as it starts: the configuration is read again once it runs, and
        // the certificate watchers reload.
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let listener = tokio::net::TcpListener::from_std(http)?;
        // Also with no receiver yet: a reload may add one.
        carecall_admin::hooks::start_delivery(&database, &node, receivers.clone(), hook_wake)?;
        let signer = LinkSigner::new(&secret);
        if let Some((_, (_, Some(dev)))) = &https {
            println!(
                "HTTPS uses a self-signed certificate (development only; set https.cert and https.key): \
                 add {} to a test machine's trust store, or start a test browser with \
                 --ignore-certificate-errors-spki-list={}",
                dev.pem.display(),
                dev.spki
            );
        }
        print_banner(&config, &node, &signer, &media, turn.as_ref())?;
        let mut state = AppState::new(signer.clone(), media.clone(), Some(events_tx))
            .with_event_tally(tally)
            .with_limits(limits.socket.clone(), refusals.clone())
            .with_first_participant(first_participant);
        if let Some(placer) = placer {
            state = state.with_placer(placer);
        }
        if config.media.max_participants > 0 {
            state = state.with_capacity(config.media.max_participants);
        }
        for (room, until) in history.link_revocations()? {
            state.revocations().revoke(&room, until);
        }
        let turn_running = turn.is_some();
        let reloadable = crate::reload::Reloadable {
            file,
            running: as_loaded,
            receivers,
            record_key: record_key.clone(),
            turn_secret: turn.as_ref().map(|t| t.offer.secret.clone()),
            hours: hours.clone(),
            zone: zone.clone(),
            limits: limits.clone(),
        };
        // Every certificate served, for /metrics; TURN's watched for renewal.
        let mut certificates: Vec<std::sync::Arc<dyn carecall_admin::ServedCertificate>> =
            Vec::new();
        if let Some((_, (certs, _))) = &https {
            certificates.push(certs.clone());
        }
        if let Some(certs) = turn.as_ref().and_then(|t| t.certs.clone()) {
            tokio::spawn(certs.clone().watch());
            certificates.push(certs);
        }
        if let Some(t) = turn {
            state = state.with_turn(t.offer);
        }
        state = state.with_images(carecall_signalling::images::ImagePolicy {
            dir: config.data_dir.join("images"),
            key: recording_key.clone(),
            links: downloads.clone(),
        });
        if config.recording.enabled {
            state = state.with_recording(RecordingPolicy {
                dir: config.recording_dir(),
                key: recording_key.clone(),
            });
        }
        if !carried.is_empty() {
            tracing::info!(sessions = carried.len(), "holding calls from before the restart for their browsers");
            state.restore_consents(consents);
            state.hold_for_resume(carried);
        }
        let present = state.clone();
        let heartbeat = carecall_admin::nodes::Heartbeat::start(heartbeat_log, move || {
            let members = present.presence().members();
            let participants = members.len() as u64;
            let rooms: Vec<String> = carecall_signalling::Presence::rooms_of(&members)
                .into_iter()
                .map(str::to_owned)
                .collect();
            carecall_admin::nodes::NodeLoad {
                rooms: rooms.len() as u64,
                participants,
                present: rooms,
            }
        })
        .context("starting the node heartbeat")?;
        let stopping = state.clone();
        let admin = AdminState::new(
            media,
            state.clone(),
            accounts,
            history,
            checks,
            AdminOptions {
                metrics_token: config.metrics_token.as_deref().map(str::to_owned),
                secure_cookies: config.base_url().starts_with("https://"),
                hours,
                signer,
                base_url: config.base_url(),
                turn_running,
                home_links: carecall_admin::home_links::HomeLinks::new(&secret),
                queue: config.queue.settings(),
                sign_in: limits.sign_in.clone(),
                proxies: carecall_signalling::TrustedProxies::new(
                    config.limits.trusted_proxies.clone(),
                ),
                check_limits: limits.check.clone(),
                refusals: refusals.clone(),
                turn_failures,
                certificates,
                record_key,
                images: Some(RecordingAccess {
                    links: downloads.clone(),
                    key: recording_key.clone(),
                }),
                image_metrics,
                recordings: config.recording.enabled.then_some(RecordingAccess {
                    links: downloads,
                    key: recording_key,
                }),
            },
        );
        tokio::spawn(admin.clone().record_quality());
        let readiness = carecall_admin::readiness_routes(admin.clone());
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let http_limits = limits.http.clone();
        let app = carecall_signalling::app(state).merge(carecall_admin::routes(admin));
        // With HTTPS on, the app is served there and plain HTTP only redirects.
        let app = match https {
            Some((tls_listener, (certs, self_signed))) => {
                tokio::spawn(certs.clone().watch());
                let tls_listener = tokio::net::TcpListener::from_std(tls_listener)?;
                tokio::spawn(crate::https::serve(
                    tls_listener,
                    app,
                    certs,
                    self_signed.is_none(),
                    http_limits.clone(),
                    refusals.clone(),
                    stop.clone(),
                ));
                // Health checks stay on plain HTTP; everything else moves.
                crate::https::redirect(config.base_url()).merge(readiness)
            }
            None => app,
        };
        tokio::spawn(reloadable.on_hangup(hangups));
        tokio::spawn(crate::shutdown::on_stop(stopping, parked, stop_tx));
        crate::listen::serve(listener, app, crate::listen::Plain, http_limits, refusals, stop).await;
        // Listed as stopped, not lost, once it has gone.
        tokio::task::block_in_place(|| heartbeat.stop());
        Ok(())
    })
}

/// An error listing `problems` (key, why) when there are any.
fn refuse_start(who: &str, problems: Vec<(String, String)>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems
        .iter()
        .map(|(k, why)| format!("  {k}: {why}"))
        .collect();
    anyhow::bail!("{who} refuses to start:\n{}", list.join("\n"))
}

fn print_banner(
    config: &Config,
    node: &str,
    signer: &LinkSigner,
    media: &MediaServer,
    turn: Option<&crate::turn::TurnSetup>,
) -> anyhow::Result<()> {
    let media_addrs: Vec<String> = media.local_addrs().iter().map(|a| a.to_string()).collect();
    if config.https.enabled {
        println!("carecall listening on https://{}", config.https.addr);
        println!(
            "plain HTTP on http://{} redirects to HTTPS",
            config.http_addr
        );
    } else {
        println!("carecall listening on http://{}", config.http_addr);
    }
    println!("media (UDP) on {}", media_addrs.join(", "));
    let tcp: Vec<String> = media.tcp_addrs().iter().map(|a| a.to_string()).collect();
    if !tcp.is_empty() {
        println!("media (TCP) on {}", tcp.join(", "));
    }
    match turn {
        Some(t) => {
            println!("TURN for browsers: {}", t.offer.urls.join(", "));
            if let Some(spki) = &t.self_signed_spki {
                println!(
                    "TURN over TLS uses a self-signed certificate (set turn.cert and turn.key for production); \
                     to trust it in a test browser: --ignore-certificate-errors-spki-list={spki}"
                );
            }
        }
        None => println!("TURN: off (turn.enabled = false, or it could not start: see the log)"),
    }
    println!("data directory: {}", config.data_dir.display());
    println!("node: {node} ({})", config.database());
    println!();
    // Demo links are for trying carecall out: in production they would be
    // working 12-hour links in the journal, readable by whoever reads it.
    if config.mode == crate::config::Mode::Development {
        let ttl = Duration::from_secs(12 * 3600);
        let link = |role, name: &str| {
            let claims = JoinClaims::lasting("demo", role, name, ttl);
            signer
                .join_url(&config.base_url(), &claims)
                .map_err(|e| anyhow::anyhow!("cannot make the demo links: {e}"))
        };
        println!("Demo room \"demo\" (links valid 12 hours):");
        println!("  clinician: {}", link(Role::Clinician, "Hub clinician")?);
        println!("  care home: {}", link(Role::Home, "Care home")?);
        println!();
    }
    println!("More links: carecall link --room NAME --role home|clinician|specialist|observer");
    Ok(())
}

/// Writes call events to SQLite on this thread, off the async runtime.
/// `parked` is notified once a stop's sessions are marked for the next
/// process.
fn record_calls(
    log: CallLog,
    mut events: UnboundedReceiver<CallEvent>,
    tally: &carecall_signalling::EventTally,
    parked: &tokio::sync::Notify,
    images: &carecall_admin::ImageMetrics,
) {
    while let Some(event) = events.blocking_recv() {
        // An event is written once the database takes it: through a
        // restart of PostgreSQL it waits (and those behind it), instead of
        // being lost.
        let mut wait = Duration::from_millis(100);
        let started = std::time::Instant::now();
        loop {
            match write_event(&log, &event, parked, images) {
                Err(e) if e.is_connection_lost() && started.elapsed() < OUTAGE_WAIT => {
                    tracing::warn!(error = %e, "database unreachable: the call log waits for it");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, ?event, "call log write failed");
                    break;
                }
                Ok(()) => break,
            }
        }
        tally.written();
    }
}

/// How long a call-log event waits for an unreachable database before it
/// is logged as lost: longer than a PostgreSQL restart or failover.
const OUTAGE_WAIT: Duration = Duration::from_secs(600);

/// Writes one call event to the call log.
fn write_event(
    log: &CallLog,
    event: &CallEvent,
    parked: &tokio::sync::Notify,
    images: &carecall_admin::ImageMetrics,
) -> Result<(), carecall_admin::AdminError> {
    match event {
        CallEvent::Joined {
            room,
            participant,
            role,
            at,
        } => log.joined(room, participant, &role.to_string(), *at),
        CallEvent::Left {
            room,
            participant,
            at,
        } => log.left(room, participant, *at),
        CallEvent::Resumable {
            room,
            participant,
            resume_hash,
            claims,
        } => log.keep_resumable(room, participant, resume_hash, claims),
        CallEvent::Resumed {
            room, participant, ..
        } => log.resumed(room, participant),
        CallEvent::Stopping { at, recording } => log.park_resumable(*at, recording).map(|n| {
            tracing::info!(sessions = n, "sessions kept for the next process");
            parked.notify_one();
        }),
        CallEvent::RecordingStarted {
            room,
            recording,
            by,
            path,
            encrypted,
            at,
        } => log.recording_started(recording, room, by, path, *encrypted, *at),
        CallEvent::Consent { room, consent, at } => log.consent_recorded(room, consent, *at),
        CallEvent::RecordingFinished {
            recording,
            result,
            at,
            cut_by_restart,
            ..
        } => log.recording_finished(
            recording,
            result.as_ref().map_err(String::as_str),
            *at,
            *cut_by_restart,
        ),
        CallEvent::ImageStored {
            room,
            image,
            from,
            asked_by,
            mime,
            width,
            height,
            size,
            sha256,
            path,
            encrypted,
            upload_ms,
            asked_at,
            at,
        } => {
            images.observe(*size, Duration::from_millis(*upload_ms));
            let filed = carecall_admin::NewImage {
                id: image,
                room,
                from,
                asked_by,
                mime,
                width: *width,
                height: *height,
                size: *size,
                sha256,
                path,
                encrypted: *encrypted,
                upload_ms: *upload_ms,
                asked_at: *asked_at,
            };
            log.image_stored(&filed, *at)
        }
        _ => Ok(()),
    }
}

/// Deletes recordings and images past their retention: at start, then
/// hourly.
fn enforce_retention(log: CallLog, retention: Duration) {
    loop {
        match carecall_admin::delete_expired(&log, retention, std::time::SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "recordings past retention deleted"),
            Err(e) => tracing::error!(error = %e, "recording retention failed"),
        }
        match carecall_admin::delete_expired_images(&log, retention, std::time::SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "images past retention deleted"),
            Err(e) => tracing::error!(error = %e, "image retention failed"),
        }
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Takes the data directory's lock, held for as long as the returned file
/// lives: a second server, or a restore, on the same directory is refused.
pub fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    crate::secret::make_data_dir(data_dir)?;
    let path = data_dir.join("carecall.lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "a carecall server is running on {}; stop it first",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The HTTPS certificate: the configured files, or a self-signed one for
/// development (with what to tell people about it).
fn https_certs(
    config: &Config,
) -> anyhow::Result<(
    std::sync::Arc<crate::certs::CertStore>,
    Option<crate::https::SelfSigned>,
)> {
    match (&config.https.cert, &config.https.key) {
        (Some(cert), Some(key)) => Ok((
            crate::certs::CertStore::from_files(cert, key, "HTTPS")?,
            None,
        )),
        (None, None) => {
            let mut hosts = vec!["localhost".to_owned(), config.https.addr.ip().to_string()];
            if let Some(host) = config.public_url.as_deref().and_then(crate::turn::url_host) {
                hosts.push(host);
            }
            let dev = crate::pem::self_signed(hosts, "HTTPS")?;
            let pem = config.data_dir.join("https-dev-cert.pem");
            std::fs::write(&pem, &dev.pem).with_context(|| format!("writing {}", pem.display()))?;
            let store = crate::certs::CertStore::fixed(dev.pair, "HTTPS")?;
            let spki = dev.spki;
            Ok((store, Some(crate::https::SelfSigned { spki, pem })))
        }
        _ => anyhow::bail!("https.cert and https.key go together: set both or neither"),
    }
}
