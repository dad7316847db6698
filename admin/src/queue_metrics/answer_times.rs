//! The answer-time histogram, in a file of its own: `deploy/check.sh` takes
//! every metric named in a file that uses `HistogramOpts` for a histogram.

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec};

use super::URGENCIES;

/// Answer-time buckets in seconds, around the usual targets (2 and 10
/// minutes).
const BUCKETS: [f64; 10] = [
    10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
];

/// The answer-time histogram, kept for the life of the process.
#[derive(Clone)]
pub struct QueueMetrics {
    answer: HistogramVec,
}

impl Default for QueueMetrics {
    fn default() -> Self {
        let opts = HistogramOpts::new(
            "carecall_queue_answer_seconds",
            "From a home's call being queued to its first answer, by urgency.",
        )
        .buckets(BUCKETS.to_vec());
        let answer =
            HistogramVec::new(opts, &["urgency"]).expect("constant histogram options are valid");
        // Both series exist from the start, so a rule never sees a gap.
        for u in URGENCIES {
            answer.with_label_values(&[u]);
        }
        QueueMetrics { answer }
    }
}

impl QueueMetrics {
    /// A call was answered for the first time after `seconds` in the queue.
    pub fn answered(&self, urgent: bool, seconds: f64) {
        self.answer
            .with_label_values(&[URGENCIES[usize::from(urgent)]])
            .observe(seconds.max(0.0));
    }

    /// The histogram, to register in a scrape's registry.
    pub(crate) fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.answer.clone())
    }
}
