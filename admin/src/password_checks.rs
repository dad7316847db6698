//! Password checks on a few threads of their own. Each Argon2 check takes
//! about 19 MiB for a moment; run on tokio's blocking pool, a burst of
//! sign-ins could run hundreds at once and leave each thread's allocator
//! holding its share. Here at most `threads` run, a short queue waits, and
//! a try that finds the queue full is refused at once.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::AdminError;

type Job = Box<dyn FnOnce() + Send>;

/// Tries queued behind the running checks, per thread.
const QUEUE_PER_THREAD: usize = 4;

/// The sign-in checkers' queue.
pub(crate) struct PasswordChecks {
    jobs: SyncSender<Job>,
}

/// Every checker is busy and the queue is full.
#[derive(Debug)]
pub(crate) struct Busy;

impl PasswordChecks {
    /// Starts `threads` checker threads (at least one).
    pub(crate) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(threads * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let started = std::thread::Builder::new()
                .name(format!("sign-in-{i}"))
                .spawn(move || check_until_closed(&queue));
            if let Err(e) = started {
                tracing::error!(error = %e, "a sign-in checker thread could not start");
            }
        }
        PasswordChecks { jobs }
    }

    /// Runs `work` on a checker thread; `Err(Busy)` when too many wait.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
    ) -> Result<Result<T, AdminError>, Busy> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => Ok(result.await.unwrap_or(Err(AdminError::Interrupted))),
            Err(TrySendError::Full(_)) => Err(Busy),
            Err(TrySendError::Disconnected(_)) => Ok(Err(AdminError::Interrupted)),
        }
    }
}

fn check_until_closed(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_threads_run_and_the_overflow_is_refused() {
        let checks = Arc::new(PasswordChecks::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tries = Vec::new();
        for _ in 0..40 {
            let (checks, running, most) = (checks.clone(), running.clone(), most.clone());
            tries.push(tokio::spawn(async move {
                checks
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
                    .is_ok()
            }));
        }
        let mut ran = 0;
        for t in tries {
            ran += usize::from(t.await.unwrap());
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "at most two at once");
        assert!(
            (2..40).contains(&ran),
            "{ran} of 40 ran: the overflow is refused"
        );
    }
}
