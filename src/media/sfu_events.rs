//! What the SFU says about a session (signals, connected, closed) reaches the socket that
//! holds it, on any replica: the one holding it when the event comes (`sfu:resume` hands a
//! session to a new socket).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::sessions::{Seat, Sessions};
use crate::ids::{RoomId, UserId};
use crate::realtime::SocketIo;
use crate::sfu::{SfuError, SfuEvent, SfuEventKind};

/// Carries what the SFU says about session `session` to the socket that holds it (on any
/// replica). Once the session is no longer the seat's (replaced, released), its last words
/// go to the last socket that held it.
pub(super) async fn forward_sfu_events(
    io: SocketIo,
    sessions: Arc<Sessions>,
    mut socket: String,
    seat: Seat,
    session: u64,
    mut events: mpsc::UnboundedReceiver<SfuEvent>,
) {
    let (room, user) = seat;
    while let Some(event) = events.recv().await {
        if let Some(holder) = sessions.socket_of(seat, session) {
            socket = holder;
        }
        let target = io.to(socket.clone());
        let sent = match event.kind {
            SfuEventKind::Signal(signal) => {
                let mut payload = signal.payload();
                if let Value::Object(fields) = &mut payload {
                    fields.insert("roomId".into(), json!(room));
                }
                target.emit(signal.event_name(), &payload).await
            }
            SfuEventKind::Connected => {
                target
                    .emit("sfu:connected", &json!({ "roomId": room }))
                    .await
            }
            SfuEventKind::Closed(reason) => {
                sessions.release_session(seat, session);
                let _ = target
                    .emit("sfu:closed", &json!({ "roomId": room, "reason": reason }))
                    .await;
                return;
            }
        };
        if let Err(e) = sent {
            tracing::debug!(%room, %user, error = %e, "sfu event not delivered");
        }
    }
}

pub(super) fn log_removal(result: Result<(), SfuError>, room: RoomId, user: UserId) {
    match result {
        Ok(()) | Err(SfuError::UnknownRoom | SfuError::UnknownParticipant) => {}
        Err(e) => tracing::warn!(%room, %user, error = %e, "sfu: removing a participant failed"),
    }
}
