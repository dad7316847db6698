//! Hub consoles open now, by role: the pages that would chime when a call
//! arrives. A sign-in lasts 12 hours, so "signed in" alone counts someone
//! who went home without signing out; an open console is someone watching.

use std::sync::Arc;

use prometheus::{IntGaugeVec, Opts};

use crate::accounts::AccountRole;

/// The count of open consoles, shared by every console socket.
#[derive(Clone)]
pub struct OpenConsoles {
    gauge: IntGaugeVec,
}

impl Default for OpenConsoles {
    fn default() -> Self {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "carecall_consoles_open",
                "Hub consoles open now (live pages that chime when a call arrives), by role.",
            ),
            &["role"],
        )
        .expect("constant gauge options are valid");
        // Every role's series exists from the start: a rule sees 0, not a gap.
        for role in AccountRole::ALL {
            gauge.with_label_values(&[role.as_str()]);
        }
        OpenConsoles { gauge }
    }
}

impl OpenConsoles {
    /// Counts a console of `role` until the returned guard is dropped.
    pub(crate) fn opened(&self, role: AccountRole) -> ConsoleOpen {
        let gauge = self.gauge.with_label_values(&[role.as_str()]);
        gauge.inc();
        ConsoleOpen {
            gauge: Arc::new(gauge),
        }
    }

    /// The gauge, to register in a scrape's registry.
    pub(crate) fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.gauge.clone())
    }
}

/// One open console; uncounted when dropped.
pub(crate) struct ConsoleOpen {
    gauge: Arc<prometheus::IntGauge>,
}

impl Drop for ConsoleOpen {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_counts_while_open() {
        let consoles = OpenConsoles::default();
        let reading = |role: AccountRole| consoles.gauge.with_label_values(&[role.as_str()]).get();
        let first = consoles.opened(AccountRole::Operator);
        let second = consoles.opened(AccountRole::Operator);
        assert_eq!(reading(AccountRole::Operator), 2);
        assert_eq!(reading(AccountRole::Admin), 0);
        drop(first);
        assert_eq!(reading(AccountRole::Operator), 1);
        drop(second);
        assert_eq!(reading(AccountRole::Operator), 0);
    }
}
