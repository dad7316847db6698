//! Hub staff asking someone in the call for what only the person holding
//! the tablet can do: turn to the rear camera to show a wound or a chart.
//! The server passes the request on; the page asks its user, who decides.

use carecall_sfu::ParticipantId;
use tokio::sync::mpsc::UnboundedSender;

use crate::protocol::{clip, Request, ServerMessage};
use crate::recording::refuse;
use crate::token::{JoinClaims, Role};
use crate::AppState;

/// `by` (with `claims`) asks participant `target` for `what`. Refused, and
/// not fatal, if `by` is not hub staff or `target` is not in the call.
pub(crate) fn ask(
    state: &AppState,
    claims: &JoinClaims,
    by: ParticipantId,
    target: &str,
    what: Request,
    outbox: &UnboundedSender<ServerMessage>,
) {
    if matches!(claims.role, Role::Home | Role::Observer) {
        tracing::info!(role = %claims.role, "ask refused: not hub staff");
        return refuse(outbox, "not-allowed", "Only hub staff can ask for that.");
    }
    let Ok(id) = target.parse::<ParticipantId>() else {
        let message = format!("no participant is called {:?}", clip(target));
        return refuse(outbox, "bad-participant", &message);
    };
    let upload = match what {
        Request::Photo => match crate::images::ask(state, claims, by, id) {
            Ok(ticket) => Some(ticket),
            Err(why) => return refuse(outbox, "image-refused", &why),
        },
        Request::RearCamera => None,
    };
    let asked = ServerMessage::Asked {
        what,
        by: by.to_string(),
        name: claims.name.clone(),
        upload: upload.clone(),
    };
    if !state.inner.presence.send_to(&claims.room, id, asked) {
        if let Some(ticket) = upload {
            crate::images::cancel(state, &ticket);
        }
        let message = format!("no participant is called {:?}", clip(target));
        return refuse(outbox, "bad-participant", &message);
    }
    tracing::info!(target = %clip(target), ?what, "asked");
}
