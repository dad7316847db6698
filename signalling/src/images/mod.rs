//! Clinical still images. Hub staff ask someone in the call for a photo
//! (`ask` with `what: "photo"`); the server opens an upload and hands its
//! ticket to that participant's page alone, which captures a full-resolution
//! frame and sends it over HTTPS in pieces (`PUT /images/uploads/{ticket}`),
//! resuming after a drop from what arrived. The whole image is checked
//! against its SHA-256, sealed at rest as recordings are, logged (and sent
//! to the record hooks) as `image.ready`, and shown to whoever asked through
//! a signed, expiring link. The upload runs beside the call over TCP, so the
//! page paces it to leave the call's audio room (see `docs/images.md`).

pub mod format;
mod routes;
mod uploads;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use carecall_sfu::recording::RecordingKey;
use carecall_sfu::ParticipantId;
use ring::rand::{SecureRandom, SystemRandom};

pub(crate) use routes::routes;
pub(crate) use uploads::{Asked, Uploads};
pub use uploads::{MAX_IMAGE_BYTES, MAX_PIECE_BYTES};

use crate::downloads::{Download, DownloadLinks};
use crate::token::{JoinClaims, Role};
use crate::AppState;

/// Where images are kept and how they are reached.
#[derive(Clone, Debug)]
pub struct ImagePolicy {
    /// The images directory.
    pub dir: PathBuf,
    /// Seals each file with AES-256-GCM (the recordings' key); `None`
    /// keeps plain files, as recordings are then.
    pub key: Option<RecordingKey>,
    /// Signs the links images are viewed and downloaded by.
    pub links: DownloadLinks,
}

/// The uploads in progress, shared by the sessions and the upload routes.
#[derive(Default)]
pub(crate) struct ImageBook {
    uploads: Mutex<Uploads>,
}

impl ImageBook {
    /// The uploads in progress, locked (a poisoned lock is recovered: the
    /// uploads' state is whole after every call).
    pub(crate) fn uploads(&self) -> std::sync::MutexGuard<'_, Uploads> {
        self.uploads.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// 128 random bits, hex: an upload's ticket, an image's id.
fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(carecall_sfu::recording::hex(&bytes))
}

/// Opens an upload for `by` (hub staff, with `claims`) asking `from` for a
/// photo; the ticket goes to `from`'s page only.
pub(crate) fn ask(
    state: &AppState,
    claims: &JoinClaims,
    by: ParticipantId,
    from: ParticipantId,
) -> Result<String, String> {
    if state.inner.images.is_none() {
        return Err("Images are switched off on this hub.".into());
    }
    if matches!(claims.role, Role::Home | Role::Observer) {
        return Err("Only hub staff can ask for a photo.".into());
    }
    let ticket = random_id().ok_or("no randomness for a ticket")?;
    let asked = Asked {
        room: claims.room.clone(),
        by,
        by_name: claims.name.clone(),
        from,
        at: SystemTime::now(),
    };
    state
        .inner
        .images_book
        .uploads()
        .open(ticket.clone(), asked, Instant::now())
        .map_err(|e| e.to_string())?;
    Ok(ticket)
}

/// Forgets the upload `ticket` opened by [`ask`] for someone who turned
/// out not to be in the call.
pub(crate) fn cancel(state: &AppState, ticket: &str) {
    state.inner.images_book.uploads().cancel(ticket);
}

/// A stored image's link for whoever may see it, and when it expires.
pub(crate) fn link(policy: &ImagePolicy, id: &str) -> (String, u64) {
    policy
        .links
        .link_to(Download::Image, id, crate::token::unix_now())
}
