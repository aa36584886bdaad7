//! How media sessions end and move: a seat, a socket or a room goes away; mute; and, in a
//! cluster, the upkeep of this replica's claim on the rooms it serves.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::service::Media;
use super::sessions::Seat;
use super::sfu_events::log_removal;
use super::wire::MediaRequest;
use crate::error::ErrorCode;
use crate::ids::{RoomId, UserId};
use crate::sfu::{MediaKind, SfuError, SfuHandle};

impl Media {
    /// The seat is gone (left, kicked): its media goes too. Every replica hears of it; the
    /// one whose SFU serves the seat closes it.
    pub async fn seat_gone(&self, room: RoomId, user: UserId, kicked: bool) {
        self.sessions.remote().remove(&(room, user));
        let Some(sfu) = &self.sfu else { return };
        if !self.sessions.release((room, user), None) {
            return;
        }
        let (room_key, user_key) = (room.to_string(), user.to_string());
        let result = if kicked {
            sfu.kick(&room_key, &user_key).await
        } else {
            sfu.leave(&room_key, &user_key).await
        };
        log_removal(result, room, user);
    }

    /// The room ended: every media session in it closes.
    pub async fn room_gone(&self, room: RoomId) {
        self.sessions.remote().retain(|(r, _), _| *r != room);
        let Some(sfu) = &self.sfu else { return };
        let had_sessions = {
            let mut sessions = self.sessions.local();
            let before = sessions.len();
            sessions.retain(|(r, _), _| *r != room);
            before != sessions.len()
        };
        if had_sessions {
            if let Err(e) = sfu.end_room(&room.to_string()).await {
                if !matches!(e, SfuError::UnknownRoom) {
                    tracing::warn!(%room, error = %e, "sfu: ending the room failed");
                }
            }
        }
    }

    /// `sfu:leave`, or the socket closed cleanly (tab closed, reload): the media session it
    /// holds closes at once.
    pub async fn leave_session(self: &Arc<Self>, room: RoomId, user: UserId, socket: &str) {
        let request = MediaRequest::Leave {
            room,
            user,
            socket: socket.to_owned(),
        };
        self.from_gone_holder((room, user), socket, request).await;
    }

    /// The socket vanished (no pong, a transport error: its network went away): the media
    /// session it holds goes on and waits `resume_grace_secs` for the page's next socket
    /// (`sfu:resume`) before it closes.
    pub async fn socket_vanished(self: &Arc<Self>, room: RoomId, user: UserId, socket: &str) {
        let request = MediaRequest::Away {
            room,
            user,
            socket: socket.to_owned(),
        };
        self.from_gone_holder((room, user), socket, request).await;
    }

    /// Carries what a departing socket asks of its session to the replica that serves it.
    async fn from_gone_holder(self: &Arc<Self>, seat: Seat, socket: &str, request: MediaRequest) {
        let remote_owner = {
            let mut remote = self.sessions.remote();
            match remote.get(&seat) {
                Some((node, holder)) if holder == socket => {
                    let node = node.clone();
                    remote.remove(&seat);
                    Some(node)
                }
                _ => None,
            }
        };
        let result = match remote_owner {
            Some(node) => self.call(&node, &request).await,
            None if self.sfu.is_some() => self.execute(request).await,
            None => Ok(Value::Null),
        };
        if let Err(e) = result {
            let (room, user) = seat;
            tracing::debug!(%room, %user, error = %e, "media session not closed");
        }
    }

    /// On the replica serving the seat: the session `socket` holds waits for `sfu:resume`
    /// (the SFU holds its deadlines meanwhile), then closes unless it was taken.
    pub(super) async fn hold_for_resume(
        self: &Arc<Self>,
        sfu: &SfuHandle,
        seat: Seat,
        socket: String,
    ) {
        let (room, user) = seat;
        if self.resume_grace.is_zero() {
            self.close_if_held(sfu, seat, &socket).await;
            return;
        }
        if !self.sessions.mark_away(seat, &socket) {
            return;
        }
        tracing::info!(%room, %user, grace = ?self.resume_grace, "media: socket vanished, session kept for sfu:resume");
        if let Err(e) = sfu
            .signaling_away(&room.to_string(), &user.to_string())
            .await
        {
            tracing::debug!(%room, %user, error = %e, "sfu: session already gone");
        }
        let media = Arc::downgrade(self);
        let (sfu, grace) = (sfu.clone(), self.resume_grace);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(media) = media.upgrade() {
                // Only if `socket` still holds it: a resumed session has another.
                media.close_if_held(&sfu, seat, &socket).await;
            }
        });
    }

    /// Closes the seat's session if `socket` holds it.
    pub(super) async fn close_if_held(&self, sfu: &SfuHandle, seat: Seat, socket: &str) {
        if self.sessions.release(seat, Some(socket)) {
            let (room, user) = seat;
            log_removal(
                sfu.disconnect(&room.to_string(), &user.to_string()).await,
                room,
                user,
            );
        }
    }

    /// The process is stopping: every room served here is handed over. The claims are given
    /// up, the sessions close, and each holder's socket (on any replica) hears `sfu:closed
    /// {reason: "moved"}`, so its browser joins again and lands on a replica that claims the
    /// room. No session starts here afterwards.
    pub async fn drain(self: &Arc<Self>) {
        self.draining.store(true, Ordering::Release);
        let Some(sfu) = &self.sfu else { return };
        let sessions: Vec<(Seat, String)> = self
            .sessions
            .local()
            .drain()
            .map(|(seat, holder)| (seat, holder.socket))
            .collect();
        let rooms: HashSet<RoomId> = sessions.iter().map(|((room, _), _)| *room).collect();
        for room in &rooms {
            self.placement.vacate(*room).await;
        }
        for ((room, user), socket) in &sessions {
            // `Left` is what the browser hears from the SFU; "moved" below starts it again.
            log_removal(
                sfu.leave(&room.to_string(), &user.to_string()).await,
                *room,
                *user,
            );
            let _ = self
                .io
                .to(socket.clone())
                .emit("sfu:closed", &json!({ "roomId": room, "reason": "moved" }))
                .await;
        }
        tracing::info!(
            rooms = rooms.len(),
            sessions = sessions.len(),
            "media: sessions closed for the move; their browsers join again where the room lands"
        );
    }

    /// Media sessions this process serves.
    pub fn sessions_here(&self) -> usize {
        self.sessions.local().len()
    }

    /// Stops forwarding the participant's microphone or camera if this replica's SFU serves
    /// them (every replica hears the event that asks it; the one serving the seat acts).
    pub async fn mute_here(&self, room: RoomId, user: UserId, kind: MediaKind) {
        let Some(sfu) = &self.sfu else { return };
        match sfu
            .set_muted(&room.to_string(), &user.to_string(), kind, true)
            .await
        {
            Ok(()) | Err(SfuError::UnknownRoom | SfuError::UnknownParticipant) => {}
            Err(e) => tracing::debug!(%room, %user, error = %e, "sfu: mute not applied"),
        }
    }

    /// Mute or unmute forwarding of the participant's microphone or camera.
    pub async fn set_muted(
        self: &Arc<Self>,
        room: RoomId,
        user: UserId,
        kind: MediaKind,
        muted: bool,
    ) {
        if self.sfu.is_none() {
            return;
        }
        let request = MediaRequest::Mute {
            room,
            user,
            kind,
            muted,
        };
        match self.to_session((room, user), request).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::SfuNotJoined => {}
            Err(e) => tracing::debug!(%room, %user, error = %e, "mute not applied"),
        }
    }

    /// Placement upkeep, every third of the lease: renews this replica's claim on the rooms it
    /// serves and gives up the ones it serves nobody in; closes sessions whose owner is gone
    /// (here: claim lost; elsewhere: lease ran out), so their browsers join again. In one
    /// process every room is here and nothing ever moves.
    pub(super) async fn keep_placement(
        self: &Arc<Self>,
        lease: Duration,
        shutdown: CancellationToken,
    ) {
        let mut served: HashSet<RoomId> = HashSet::new();
        let mut tick = tokio::time::interval((lease / 3).max(Duration::from_secs(1)));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now: HashSet<RoomId> = self
                .sessions
                .local()
                .keys()
                .map(|(room, _)| *room)
                .collect();
            for room in served.difference(&now) {
                self.placement.vacate(*room).await;
            }
            let rooms: Vec<RoomId> = now.iter().copied().collect();
            for room in self.placement.keep(&rooms).await {
                tracing::warn!(%room, "media: another replica took this room over");
                let holders: Vec<String> = {
                    let mut sessions = self.sessions.local();
                    let gone: Vec<Seat> = sessions
                        .keys()
                        .filter(|(r, _)| *r == room)
                        .copied()
                        .collect();
                    gone.iter()
                        .filter_map(|seat| sessions.remove(seat))
                        .map(|holder| holder.socket)
                        .collect()
                };
                if let Some(sfu) = &self.sfu {
                    let _ = sfu.end_room(&room.to_string()).await;
                }
                for socket in holders {
                    self.tell_connection_failed(&socket, room).await;
                }
            }
            served = now;
            let remote: Vec<(Seat, String, String)> = self
                .sessions
                .remote()
                .iter()
                .map(|(seat, (node, socket))| (*seat, node.clone(), socket.clone()))
                .collect();
            for ((room, user), node, socket) in remote {
                if !self.placement.is_owner(room, &node).await {
                    tracing::info!(%room, %user, %node, "media: the room's media replica is gone");
                    self.sessions.remote().remove(&(room, user));
                    self.tell_connection_failed(&socket, room).await;
                }
            }
        }
    }

    async fn tell_connection_failed(&self, socket: &str, room: RoomId) {
        let _ = self
            .io
            .to(socket.to_owned())
            .emit(
                "sfu:closed",
                &json!({ "roomId": room, "reason": "connectionFailed" }),
            )
            .await;
    }
}
