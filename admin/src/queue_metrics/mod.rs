//! The call queue and the service in Prometheus' terms: calls waiting and
//! the oldest wait by urgency beside its target, the answer-time histogram,
//! calls by what became of them, whether a service is open, and who is
//! signed in to answer. The alert rules in `deploy/prometheus` read these
//! (an urgent call waiting beyond its target; nobody to answer while a
//! service is open).
//!
//! The counts are read from the database at each scrape, so they survive a
//! restart; the histogram is observed as calls are answered.

mod answer_times;
mod consoles;

pub use answer_times::QueueMetrics;
pub(crate) use consoles::ConsoleOpen;
pub use consoles::OpenConsoles;

use crate::sql::{Db, SqlResult};
use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::accounts::AccountRole;
use crate::service_hours::{Period, ServiceHours};
use crate::state::QueueSettings;

/// Label values of `urgency`, routine first.
const URGENCIES: [&str; 2] = ["routine", "urgent"];

/// What one scrape shows of the queue and the service.
#[derive(Clone, Default)]
pub struct QueueReading {
    /// Waiting calls and the oldest one's wait in seconds, routine then urgent.
    waiting: [(i64, f64); 2],
    /// Every call from a home, by what became of it.
    calls: Vec<(&'static str, i64)>,
    /// Targets in seconds, routine then urgent.
    targets: [f64; 2],
    /// Where now falls in the service hours.
    period: Option<Period>,
    /// Accounts signed in, by role.
    signed_in: Vec<(String, i64)>,
    /// The answer-time histogram.
    metrics: Option<QueueMetrics>,
    /// Consoles open now.
    consoles: Option<OpenConsoles>,
}

impl QueueReading {
    /// Reads the queue from `c` at `now_ms`.
    pub(crate) fn read(
        c: &mut Db,
        now_ms: i64,
        settings: &QueueSettings,
        hours: &ServiceHours,
    ) -> SqlResult<QueueReading> {
        let mut waiting = [(0, 0.0); 2];
        let rows = c.query_map(
            "SELECT urgent, COUNT(*), MIN(waiting_since_ms) FROM queued_calls
             WHERE state = 'waiting' GROUP BY urgent",
            &[],
            |r| Ok((r.get::<bool>(0)?, r.get(1)?, r.get::<i64>(2)?)),
        )?;
        for (urgent, n, since) in rows {
            waiting[usize::from(urgent)] = (n, (now_ms - since).max(0) as f64 / 1000.0);
        }
        let calls = c.query_row(
            "SELECT COUNT(*),
               COALESCE(SUM(CASE WHEN answered_at_ms IS NOT NULL THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN state = 'cancelled' AND answered_at_ms IS NULL THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN state = 'declined' THEN 1 ELSE 0 END), 0),
               COALESCE(SUM(CASE WHEN state = 'closed' THEN 1 ELSE 0 END), 0)
             FROM queued_calls",
            &[],
            |r| {
                Ok(vec![
                    ("placed", r.get(0)?),
                    ("answered", r.get(1)?),
                    ("cancelled_unanswered", r.get(2)?),
                    ("declined", r.get(3)?),
                    ("closed", r.get(4)?),
                ])
            },
        )?;
        Ok(QueueReading {
            waiting,
            calls,
            targets: [
                settings.target(false).as_secs_f64(),
                settings.target(true).as_secs_f64(),
            ],
            period: Some(hours.period(now_ms)),
            signed_in: Vec::new(),
            metrics: None,
            consoles: None,
        })
    }

    /// With who is signed in, the answer-time histogram and the open
    /// consoles.
    pub(crate) fn with(
        mut self,
        signed_in: Vec<(String, i64)>,
        metrics: QueueMetrics,
        consoles: OpenConsoles,
    ) -> Self {
        self.signed_in = signed_in;
        self.metrics = Some(metrics);
        self.consoles = Some(consoles);
        self
    }

    /// Adds the queue's series to `registry`.
    pub(crate) fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let waiting = IntGaugeVec::new(
            Opts::new(
                "carecall_queue_waiting_calls",
                "Calls from homes waiting to be answered, by urgency.",
            ),
            &["urgency"],
        )?;
        let oldest = GaugeVec::new(
            Opts::new(
                "carecall_queue_oldest_wait_seconds",
                "How long the longest-waiting call has waited in its queue, by urgency (0 when none waits).",
            ),
            &["urgency"],
        )?;
        let target = GaugeVec::new(
            Opts::new(
                "carecall_queue_answer_target_seconds",
                "The configured answer-time target, by urgency.",
            ),
            &["urgency"],
        )?;
        for (i, u) in URGENCIES.into_iter().enumerate() {
            waiting.with_label_values(&[u]).set(self.waiting[i].0);
            oldest.with_label_values(&[u]).set(self.waiting[i].1);
            target.with_label_values(&[u]).set(self.targets[i]);
        }
        let calls = IntCounterVec::new(
            Opts::new(
                "carecall_queue_calls_total",
                "Calls from homes since the hub began, by what became of them (placed counts all).",
            ),
            &["outcome"],
        )?;
        for (outcome, n) in &self.calls {
            calls
                .with_label_values(&[outcome])
                .inc_by((*n).max(0) as u64);
        }
        let open = IntGauge::new(
            "carecall_service_open",
            "1 while one of the hub's services is open (docs/reports.md), else 0.",
        )?;
        open.set(i64::from(self.period.is_some_and(|p| p != Period::Closed)));
        // One series per period, 1 for the one now: a gauge named by its
        // unit (`_in_hours`) would read as a duration.
        let period = IntGaugeVec::new(
            Opts::new(
                "carecall_service_period",
                "1 for the period now (in_hours, out_of_hours, closed; docs/reports.md), else 0.",
            ),
            &["period"],
        )?;
        for p in [Period::InHours, Period::OutOfHours, Period::Closed] {
            period
                .with_label_values(&[p.name()])
                .set(i64::from(self.period == Some(p)));
        }
        let staff = IntGaugeVec::new(
            Opts::new(
                "carecall_staff_signed_in",
                "Accounts signed in now, by role.",
            ),
            &["role"],
        )?;
        for role in AccountRole::ALL {
            let n = self
                .signed_in
                .iter()
                .find(|(r, _)| r == role.as_str())
                .map_or(0, |(_, n)| *n);
            staff.with_label_values(&[role.as_str()]).set(n);
        }
        registry.register(Box::new(waiting))?;
        registry.register(Box::new(oldest))?;
        registry.register(Box::new(target))?;
        registry.register(Box::new(calls))?;
        registry.register(Box::new(open))?;
        registry.register(Box::new(period))?;
        registry.register(Box::new(staff))?;
        if let Some(m) = &self.metrics {
            registry.register(m.collector())?;
        }
        if let Some(c) = &self.consoles {
            registry.register(c.collector())?;
        }
        Ok(())
    }
}
