//! Clinical images for the people who may see them: whoever asked views one
//! in the call, and the integration engine downloads it, with the signed
//! link from `image.ready` (the link is the permission, and it expires;
//! each view is in the audit trail). Retention deletes files past their time
//! as it does recordings'. Counted for `/metrics`.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use carecall_sfu::recording::export;
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter};

use crate::api_error::ApiError;
use crate::call_log::{CallLog, ImageRow};
use crate::recordings::{ready_to_send, DownloadQuery};
use crate::state::AdminState;
use crate::{AdminError, Download};

/// How long a view waits for the call log to file an image that has just
/// arrived (its link reaches the page as the row is written).
const FILED_WITHIN: Duration = Duration::from_secs(2);

/// `GET /images/{id}/download?expires=…&sig=…`: the image, decrypted.
pub(crate) async fn download(
    State(state): State<AdminState>,
    from: crate::auth::ClientIp,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let Some(access) = state.images.clone() else {
        return Err(ApiError::not_found("images are switched off on this hub"));
    };
    q.check(&access.links, Download::Image, &id)?;
    let row = ready_to_send(filed(&state, &id, &from.0).await, |r| &r.state, "image")?;
    let (path, key) = (row.path.clone(), access.key.clone());
    let bytes = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        export(&path, key.as_ref(), &mut out).map(|_| out)
    })
    .await;
    let unopened = |e: String| ApiError::internal("image open", e, "the image could not be opened");
    let bytes = bytes
        .map_err(|e| unopened(e.to_string()))?
        .map_err(|e| unopened(format!("{}: {e}", row.id)))?;
    Ok((
        [
            (header::CONTENT_TYPE, row.mime.clone()),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{}.{}\"", row.id, extension(&row.mime)),
            ),
        ],
        bytes,
    )
        .into_response())
}

fn extension(mime: &str) -> &'static str {
    if mime == "image/png" {
        "png"
    } else {
        "jpg"
    }
}

/// Image `id` once the call log has filed it, noting the view in the audit
/// trail before the file goes out.
async fn filed(state: &AdminState, id: &str, from: &str) -> Result<Option<ImageRow>, AdminError> {
    let deadline = tokio::time::Instant::now() + FILED_WITHIN;
    loop {
        let (lookup, from) = (id.to_owned(), from.to_owned());
        let row = crate::blocking_locked(&state.call_log, move |log| {
            let row = log.image(&lookup)?;
            if let Some(r) = row.as_ref().filter(|r| r.state == "ready") {
                let subject = format!("consultation {}, image {}", r.consultation, r.id);
                log.audit(
                    "signed link",
                    &from,
                    "image.viewed",
                    &subject,
                    SystemTime::now(),
                )?;
            }
            Ok(row)
        })
        .await?;
        if row.is_some() || tokio::time::Instant::now() >= deadline {
            return Ok(row);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes the files of images stored more than `retention` before `now`,
/// as [`crate::delete_expired`] does recordings'. Returns how many.
pub fn delete_expired_images(
    log: &CallLog,
    retention: Duration,
    now: SystemTime,
) -> Result<usize, AdminError> {
    let before = crate::clock::ms(now - retention);
    let files = log
        .images_older_than(before)?
        .into_iter()
        .map(|i| (i.id, i.path));
    crate::recordings::delete_files("image", files, retention, |id, reason| {
        log.image_deleted(id, reason, now)
    })
}

/// Images taken since the hub started, for `/metrics`.
#[derive(Clone)]
pub struct ImageMetrics {
    taken: IntCounter,
    bytes: IntCounter,
    upload: Histogram,
}

impl Default for ImageMetrics {
    fn default() -> Self {
        let opts = HistogramOpts::new(
            "carecall_image_upload_seconds",
            "From an image's first piece arriving to its last.",
        )
        .buckets(vec![
            0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
        ]);
        ImageMetrics {
            taken: IntCounter::new("carecall_images_taken_total", "Clinical images stored.")
                .expect("constant counter options are valid"),
            bytes: IntCounter::new(
                "carecall_image_bytes_total",
                "Bytes of clinical images stored.",
            )
            .expect("constant counter options are valid"),
            upload: Histogram::with_opts(opts).expect("constant histogram options are valid"),
        }
    }
}

impl ImageMetrics {
    /// Counts an image of `size` bytes that took `upload` to arrive.
    pub fn observe(&self, size: u64, upload: Duration) {
        self.taken.inc();
        self.bytes.inc_by(size);
        self.upload.observe(upload.as_secs_f64());
    }

    /// The series, to register in a scrape's registry.
    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.taken.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.upload.clone()),
        ]
    }
}
