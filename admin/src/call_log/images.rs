//! Clinical images in the call log: one row per image, from arrival to
//! deletion by retention, each change with its record-hook event in the
//! same transaction.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::sql::{values, Db, OptionalRow, Row, SqlResult};
use serde_json::json;

use super::recordings::role_of;
use super::{open_call, CallLog};
use crate::clock::ms;
use crate::hooks::rfc3339;
use crate::AdminError;

/// An image as it arrived, for the call log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage<'a> {
    /// Its id (also its file name).
    pub id: &'a str,
    /// Room name.
    pub room: &'a str,
    /// Who took it (`p<n>`).
    pub from: &'a str,
    /// Who asked for it (`p<n>`).
    pub asked_by: &'a str,
    /// `image/jpeg` or `image/png`.
    pub mime: &'a str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes of the image.
    pub size: u64,
    /// SHA-256 of the image, hex.
    pub sha256: &'a str,
    /// The file.
    pub path: &'a std::path::Path,
    /// Sealed with the hub's key.
    pub encrypted: bool,
    /// From its first piece to its last, ms.
    pub upload_ms: u64,
    /// When it was asked for.
    pub asked_at: SystemTime,
}

/// One image as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    /// Its id.
    pub id: String,
    /// Room name.
    pub room: String,
    /// The consultation it belongs to.
    pub consultation: i64,
    /// Who took it.
    pub taken_by: String,
    /// Who asked for it.
    pub asked_by: String,
    /// When it was stored, ms since the epoch.
    pub stored_at_ms: i64,
    /// `ready` or `deleted`.
    pub state: String,
    /// The file.
    pub path: PathBuf,
    /// Sealed with the hub's key.
    pub encrypted: bool,
    /// `image/jpeg` or `image/png`.
    pub mime: String,
    /// Width and height in pixels.
    pub width: u32,
    /// See `width`.
    pub height: u32,
    /// Bytes.
    pub size: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Upload time, ms.
    pub upload_ms: i64,
}

const COLUMNS: &str = "id, room, call_id, taken_by, asked_by, stored_at_ms, state, path, encrypted, mime, width, height, bytes, sha256, upload_ms";

fn row(r: &Row) -> SqlResult<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        room: r.get(1)?,
        consultation: r.get(2)?,
        taken_by: r.get(3)?,
        asked_by: r.get(4)?,
        stored_at_ms: r.get(5)?,
        state: r.get(6)?,
        path: PathBuf::from(r.get::<String>(7)?),
        encrypted: r.get(8)?,
        mime: r.get(9)?,
        width: r.get(10)?,
        height: r.get(11)?,
        size: r.get(12)?,
        sha256: r.get(13)?,
        upload_ms: r.get(14)?,
    })
}

fn who(c: &mut Db, participant: &str) -> SqlResult<serde_json::Value> {
    Ok(json!({ "participant": participant, "role": role_of(c, participant)? }))
}

impl CallLog {
    /// Files an image that arrived in `image.room`'s consultation; emits
    /// `image.ready` with a download link.
    pub fn image_stored(&self, image: &NewImage<'_>, at: SystemTime) -> Result<(), AdminError> {
        let at = ms(at);
        let hooks = &self.hooks;
        self.change(|c| {
            let call = open_call(c, image.room)?.unwrap_or(0);
            c.execute(
                "INSERT INTO images (id, room, call_id, taken_by, asked_by, asked_at_ms, stored_at_ms, state,
                 path, encrypted, mime, width, height, bytes, sha256, upload_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'ready', ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                values![
                    image.id, image.room, call, image.from, image.asked_by, ms(image.asked_at), at,
                    image.path.to_string_lossy(), image.encrypted, image.mime, image.width, image.height,
                    image.size as i64, image.sha256, image.upload_ms as i64
                ],
            )?;
            let mut data = json!({
                "image": image.id,
                "room": image.room,
                "taken_by": who(c, image.from)?,
                "asked_by": who(c, image.asked_by)?,
                "asked_at": rfc3339(ms(image.asked_at)),
                "taken_at": rfc3339(at),
                "format": image.mime,
                "width": image.width,
                "height": image.height,
                "size": image.size,
                "sha256": image.sha256,
                "encrypted_at_rest": image.encrypted,
                "upload_seconds": image.upload_ms as f64 / 1000.0,
            });
            hooks.add_download(&mut data, crate::Download::Image, image.id, at);
            hooks.emit(c, call, "image.ready", data, at)
        })
    }

    /// One image by id.
    pub fn image(&self, id: &str) -> Result<Option<ImageRow>, AdminError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM images WHERE id = ?1"),
                values![id],
                row,
            )
            .optional()
        })
    }

    /// The images of consultation `call`, oldest first.
    pub fn images_of(&self, call: i64) -> Result<Vec<ImageRow>, AdminError> {
        self.images_where("call_id = ?1", values![call])
    }

    /// Images with a file on disk stored before `before_ms`: what retention
    /// deletes.
    pub fn images_older_than(&self, before_ms: i64) -> Result<Vec<ImageRow>, AdminError> {
        self.images_where("state = 'ready' AND stored_at_ms < ?1", values![before_ms])
    }

    fn images_where(
        &self,
        condition: &str,
        args: &[crate::sql::Value],
    ) -> Result<Vec<ImageRow>, AdminError> {
        let sql = format!("SELECT {COLUMNS} FROM images WHERE {condition} ORDER BY stored_at_ms");
        self.read(|c| c.query_map(&sql, args, row))
    }

    /// Records that image `id`'s file was deleted (`reason`: why); emits
    /// `image.deleted`.
    pub fn image_deleted(&self, id: &str, reason: &str, at: SystemTime) -> Result<(), AdminError> {
        let at = ms(at);
        let hooks = &self.hooks;
        self.change(|c| {
            let found: Option<(i64, String)> = c
                .query_row(
                    "SELECT call_id, room FROM images WHERE id = ?1",
                    values![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((call, room)) = found else {
                return Ok(());
            };
            c.execute(
                "UPDATE images SET state = 'deleted', deleted_at_ms = ?2 WHERE id = ?1",
                values![id, at],
            )?;
            let data = json!({ "image": id, "room": room, "reason": reason });
            hooks.emit(c, call, "image.deleted", data, at)
        })
    }
}

/// The stored images of consultation `call`, oldest first, each with a
/// signed link when the hooks have links to give (made at `now_ms`): what
/// `encounter.completed` files with a resident's encounter.
pub(crate) fn ready_images(
    c: &mut Db,
    call: i64,
    hooks: &crate::hooks::HookTargets,
    now_ms: i64,
) -> SqlResult<Vec<serde_json::Value>> {
    let rows = c.query_map(
        "SELECT id, mime, width, height, bytes, sha256, stored_at_ms FROM images
         WHERE call_id = ?1 AND state = 'ready' ORDER BY stored_at_ms",
        values![call],
        |r| {
            let id: String = r.get(0)?;
            let mut image = json!({
                "image": id,
                "format": r.get::<String>(1)?,
                "width": r.get::<i64>(2)?,
                "height": r.get::<i64>(3)?,
                "size": r.get::<i64>(4)?,
                "sha256": r.get::<String>(5)?,
                "taken_at": rfc3339(r.get(6)?),
            });
            hooks.add_download(&mut image, crate::Download::Image, &id, now_ms);
            Ok(image)
        },
    )?;
    Ok(rows)
}
