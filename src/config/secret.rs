//! A secret setting: read from the file or the environment like any other,
//! but never shown by `Debug` (so a logged or printed configuration holds no
//! secret); the code that uses it reads it as a `&str`.

use serde::Deserialize;

/// A secret string from the configuration.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted, {} characters>", self.0.chars().count())
    }
}
