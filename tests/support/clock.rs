//! A server whose wall clock the test sets: libfaketime (Debian's
//! `faketime` package, which `tests/run.sh` installs) is preloaded into the
//! server and reads the time from a file the test rewrites. The clock
//! stands still between settings, so every time the server stores is the
//! one the test chose; the monotonic clock (timers, timeouts) is left real.

use std::path::PathBuf;

use jiff::Timestamp;

/// The preloaded library, wherever this machine's architecture keeps it:
/// the thread-safe build, as the server reads the clock from many threads.
fn library() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime (Debian package faketime) is installed")
}

/// The server's wall clock.
pub struct Clock {
    file: tempfile::NamedTempFile,
}

impl Clock {
    /// A clock standing at `start`.
    pub fn at(start: Timestamp) -> Clock {
        let clock = Clock {
            file: tempfile::NamedTempFile::new().expect("clock file"),
        };
        clock.set(start);
        clock
    }

    /// Moves the server's clock to `t` (UTC). The file is replaced whole
    /// (written beside it, then renamed over it): the server reads it on
    /// every clock call, and must never see it half written.
    pub fn set(&self, t: Timestamp) {
        let text = t.strftime("%Y-%m-%d %H:%M:%S").to_string();
        let next = self.file.path().with_extension("next");
        std::fs::write(&next, text).expect("clock file");
        std::fs::rename(&next, self.file.path()).expect("clock file");
    }

    /// The environment that gives a server this clock.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("LD_PRELOAD", library().display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE",
                self.file.path().display().to_string(),
            ),
            ("FAKETIME_NO_CACHE", "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()),
            // The file's times are UTC.
            ("TZ", "UTC".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
