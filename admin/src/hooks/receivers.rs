//! The receivers in force, changed by a configuration reload without a
//! restart. Events written after a change go to the new receivers; rows
//! already written for a receiver the reload dropped still go to it (its
//! URL and secret are kept for them), so a reload loses and repeats nothing.

use std::sync::{Arc, RwLock};

use super::{HookEndpoint, HookOptions};

/// Receivers' URLs, read by every writer of events.
#[derive(Debug, Clone, Default)]
pub struct HookUrls(Arc<RwLock<Vec<String>>>);

impl HookUrls {
    /// The URLs now.
    pub fn get(&self) -> Vec<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    fn set(&self, urls: Vec<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = urls;
    }
}

impl From<Vec<String>> for HookUrls {
    fn from(urls: Vec<String>) -> Self {
        HookUrls(Arc::new(RwLock::new(urls)))
    }
}

struct InForce {
    options: Arc<HookOptions>,
    /// Dropped by a reload, kept for the rows already written for them.
    retired: Vec<HookEndpoint>,
}

/// The receivers and retry settings in force; cheap to clone (shared).
#[derive(Clone)]
pub struct LiveReceivers {
    in_force: Arc<RwLock<InForce>>,
    urls: HookUrls,
}

impl LiveReceivers {
    /// Starts with `options`.
    pub fn new(options: HookOptions) -> Self {
        let urls = HookUrls::from(options.urls());
        LiveReceivers {
            in_force: Arc::new(RwLock::new(InForce {
                options: Arc::new(options),
                retired: Vec::new(),
            })),
            urls,
        }
    }

    /// The URLs events are written for; follows every [`LiveReceivers::replace`].
    pub fn urls(&self) -> HookUrls {
        self.urls.clone()
    }

    /// The settings in force.
    pub fn now(&self) -> Arc<HookOptions> {
        self.read().options.clone()
    }

    /// The receiver a row was written for: one in force, or one a reload
    /// dropped.
    pub fn endpoint(&self, url: &str) -> Option<HookEndpoint> {
        let in_force = self.read();
        in_force
            .options
            .endpoint(url)
            .or_else(|| in_force.retired.iter().find(|e| e.url == url))
            .cloned()
    }

    /// Puts `options` in force: new events go to its receivers.
    pub fn replace(&self, options: HookOptions) {
        let mut in_force = self.in_force.write().unwrap_or_else(|e| e.into_inner());
        let dropped: Vec<HookEndpoint> = in_force
            .options
            .endpoints
            .iter()
            .filter(|e| options.endpoint(&e.url).is_none())
            .cloned()
            .collect();
        in_force
            .retired
            .retain(|e| options.endpoint(&e.url).is_none());
        for e in dropped {
            in_force.retired.retain(|r| r.url != e.url);
            in_force.retired.push(e);
        }
        self.urls.set(options.urls());
        in_force.options = Arc::new(options);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, InForce> {
        self.in_force.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::HookSecret;
    use std::time::Duration;

    fn options(urls: &[&str]) -> HookOptions {
        HookOptions {
            endpoints: urls
                .iter()
                .map(|u| HookEndpoint {
                    url: (*u).into(),
                    secret: HookSecret::parse(&HookSecret::generate()).unwrap(),
                    fhir: false,
                })
                .collect(),
            give_up_after: Duration::from_secs(60),
            max_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            seal: None,
        }
    }

    #[test]
    fn a_replaced_receiver_keeps_its_written_rows_and_gets_no_new_ones() {
        let live = LiveReceivers::new(options(&["http://a/hooks"]));
        let urls = live.urls();
        assert_eq!(urls.get(), ["http://a/hooks"]);
        live.replace(options(&["http://b/hooks"]));
        assert_eq!(urls.get(), ["http://b/hooks"], "new events go to b only");
        assert!(
            live.endpoint("http://a/hooks").is_some(),
            "a's rows still go out"
        );
        assert!(live.endpoint("http://b/hooks").is_some());
        assert!(live.endpoint("http://c/hooks").is_none());
        live.replace(options(&["http://a/hooks", "http://b/hooks"]));
        assert_eq!(live.read().retired.len(), 0, "a is back in force");
        live.replace(options(&[]));
        assert!(urls.is_empty());
        assert_eq!(live.read().retired.len(), 2);
    }
}
