//! Resume tokens: the secret a browser presents on a new socket to carry on
//! its session after the old socket dropped, instead of joining afresh (the
//! others would see a leave and a join, and a second tile).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::mpsc::UnboundedSender;

use crate::session::Link;

/// The sessions that can be resumed, by token. A token is 128 random bits,
/// known only to the browser that joined; it dies with its session.
#[derive(Default)]
pub(crate) struct ResumeBook {
    sessions: Mutex<HashMap<String, UnboundedSender<Link>>>,
}

impl ResumeBook {
    /// Makes a token for a session that takes new sockets through `attach`.
    pub fn register(&self, attach: UnboundedSender<Link>) -> String {
        let mut bytes = [0u8; 16];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random number generator");
        let token = B64.encode(bytes);
        self.register_as(token.clone(), attach);
        token
    }

    /// Takes new sockets for a session carried over a restart with the
    /// token its browser already holds.
    pub fn register_as(&self, token: String, attach: UnboundedSender<Link>) {
        self.lock().insert(token, attach);
    }

    /// Gives `link` to the session `token` names; hands it back if there is
    /// no such session (never issued, or ended).
    pub fn hand_over(&self, token: &str, link: Link) -> Result<(), Link> {
        let attach = self.lock().get(token).cloned();
        match attach {
            Some(attach) => attach.send(link).map_err(|e| e.0),
            None => Err(link),
        }
    }

    /// Retires a session's token when it ends.
    pub fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UnboundedSender<Link>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
