//! The record-hook events about calls, built from the call log's rows inside
//! the transaction that changed them (documented in `docs/hooks.md`).

use crate::sql::{values, Db, SqlResult};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::quality::Badge;

/// Where and how events are written: the endpoints' URLs (one outbox row
/// each) and the hub's time zone (for the out-of-hours flag).
#[derive(Debug, Clone, Default)]
pub struct HookTargets {
    /// Endpoint URLs (those in force: a reload changes them); none means
    /// no events are kept.
    pub endpoints: super::HookUrls,
    /// The hub's service hours (and time zone).
    pub hours: Option<crate::service_hours::LiveHours>,
    /// Makes the download links in `recording.ready`.
    pub downloads: Option<crate::DownloadLinks>,
    /// Seals each event's body at rest: `encounter.completed` names the
    /// resident. Delivery opens it with the same key.
    pub seal: Option<crate::records::RecordKey>,
}

impl HookTargets {
    /// Whether anything listens.
    pub fn any(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// Puts the signed link to `what` `id`, made at `now_ms`, and when it
    /// expires into `data` (as `download_url` and `download_expires`), so
    /// the receiver can fetch the file without an account. Nothing is added
    /// when downloads are off.
    pub(crate) fn add_download(
        &self,
        data: &mut Value,
        what: crate::Download,
        id: &str,
        now_ms: i64,
    ) {
        if let Some(links) = &self.downloads {
            let (url, expires) = links.link_to(what, id, (now_ms / 1000) as u64);
            data["download_url"] = json!(url);
            data["download_expires"] = json!(rfc3339(expires as i64 * 1000));
        }
    }

    /// Writes event `kind` about `consultation` with `data` to the outbox.
    pub(crate) fn emit(
        &self,
        conn: &mut Db,
        consultation: i64,
        kind: &str,
        mut data: Value,
        now_ms: i64,
    ) -> SqlResult<()> {
        data["consultation"] = json!(consultation);
        self.write(conn, consultation, kind, &data, now_ms)
    }

    /// Stores one event, if anything listens; `key` orders events (per
    /// endpoint and key).
    fn write(
        &self,
        conn: &mut Db,
        key: i64,
        kind: &str,
        data: &Value,
        now_ms: i64,
    ) -> SqlResult<()> {
        if !self.any() {
            return Ok(());
        }
        let body = json!({
            "type": kind,
            "timestamp": rfc3339(now_ms),
            "data": data,
        })
        .to_string();
        super::outbox::enqueue(
            conn,
            self.seal.as_ref(),
            &self.endpoints.get(),
            &new_event_id(),
            key,
            kind,
            &body,
            now_ms,
        )
    }

    /// Writes event `kind` about hub call `hub_call` (a care home's call
    /// through the queue, held in `room`) with `data`. Its events are kept
    /// in order apart from consultations' (ordering key `-hub_call`).
    pub(crate) fn emit_hub_call(
        &self,
        conn: &mut Db,
        hub_call: i64,
        room: &str,
        kind: &str,
        mut data: Value,
        now_ms: i64,
    ) -> SqlResult<()> {
        data["hub_call"] = json!(hub_call);
        data["room"] = json!(room);
        self.write(conn, -hub_call, kind, &data, now_ms)
    }

    /// `consultation.ended`: the call's summary, from its sessions.
    pub(crate) fn call_ended(&self, conn: &mut Db, call: i64, now_ms: i64) -> SqlResult<()> {
        if !self.any() {
            return Ok(());
        }
        let (room, started, ended): (String, i64, i64) = conn.query_row(
            "SELECT room, started_at_ms, COALESCE(ended_at_ms, started_at_ms) FROM calls WHERE id = ?1",
            values![call],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let roles = sessions_by_role(conn, call)?;
        let (worst, reconnects): (Option<i64>, i64) = conn.query_row(
            "SELECT MAX(worst_badge), CAST(COALESCE(SUM(reconnects), 0) AS BIGINT)
             FROM participant_sessions WHERE call_id = ?1",
            values![call],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut recordings = crate::call_log::ready_recordings(conn, call)?;
        for r in &mut recordings {
            let id = r["recording"].as_str().unwrap_or_default().to_owned();
            self.add_download(r, crate::Download::Recording, &id, now_ms);
        }
        let data = json!({
            "room": room,
            "started_at": rfc3339(started),
            "ended_at": rfc3339(ended),
            "duration_seconds": (ended - started).max(0) / 1000,
            "out_of_hours": self.hours.as_ref().is_some_and(|h| h.get().out_of_hours(started)),
            "participants": roles,
            "worst_quality": worst.map(|b| Badge::from_level(b).name()),
            "reconnects": reconnects,
            "recordings": recordings,
        });
        self.emit(conn, call, "consultation.ended", data, now_ms)
    }

    /// `participant.left`, from the session row just closed.
    pub(crate) fn session_left(
        &self,
        conn: &mut Db,
        call: i64,
        participant: &str,
        now_ms: i64,
    ) -> SqlResult<()> {
        if !self.any() {
            return Ok(());
        }
        let row = conn.query_row(
            "SELECT room, role, joined_at_ms, left_at_ms, worst_badge, reconnects, transport
             FROM participant_sessions WHERE call_id = ?1 AND participant = ?2
             ORDER BY id DESC LIMIT 1",
            values![call, participant],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<i64>(2)?,
                    r.get::<Option<i64>>(3)?,
                    r.get::<Option<i64>>(4)?,
                    r.get::<i64>(5)?,
                    r.get::<Option<String>>(6)?,
                ))
            },
        )?;
        let (room, role, joined, left, worst, reconnects, transport) = row;
        let left = left.unwrap_or(joined);
        let data = json!({
            "room": room,
            "participant": participant,
            "role": role,
            "joined_at": rfc3339(joined),
            "left_at": rfc3339(left),
            "duration_seconds": (left - joined).max(0) / 1000,
            "worst_quality": worst.map(|b| Badge::from_level(b).name()),
            "reconnects": reconnects,
            "transport": transport,
        });
        self.emit(conn, call, "participant.left", data, now_ms)
    }
}

/// Consultation `call`'s participant sessions counted by role (someone who
/// rejoined counts twice), as events carry them.
pub(crate) fn sessions_by_role(
    conn: &mut Db,
    call: i64,
) -> SqlResult<serde_json::Map<String, Value>> {
    let mut roles = serde_json::Map::new();
    let counts = conn.query_map(
        "SELECT role, COUNT(*) FROM participant_sessions WHERE call_id = ?1 GROUP BY role ORDER BY role",
        values![call],
        |r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)),
    )?;
    for (role, n) in counts {
        roles.insert(role, json!(n));
    }
    Ok(roles)
}

/// A new `webhook-id`: `evt_` and 128 random bits in hex.
fn new_event_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{hex}")
}

/// UTC time with milliseconds, e.g. `2026-11-23T22:01:02.345Z`.
pub(crate) fn rfc3339(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}
