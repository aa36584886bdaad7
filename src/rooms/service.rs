//! `Rooms`: runs the rules off the async threads and publishes what changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::model::{ParticipantView, RoomDetail, RoomView};
use super::queries::{self, RoomFilter};
use super::rules::{self, NewRoom, RoomError, SeatChange};
use crate::auth::User;
use crate::cluster::Bus;
use crate::config::RoomSettings;
use crate::db::cursor::PageCursor;
use crate::db::{self, DbPool};
use crate::events::{DomainEvent, EndReason};
use crate::ids::{RoomId, UserId};

#[derive(Clone)]
pub struct Rooms {
    pool: DbPool,
    bus: Arc<dyn Bus<DomainEvent>>,
    settings: Arc<RoomSettings>,
    /// Set when this process stops: it opens no room and gives no new seat (the people it
    /// serves are moving to another replica, or it is restarting).
    draining: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveResult {
    pub room_ended: bool,
    pub new_host_id: Option<UserId>,
}

impl Rooms {
    pub fn new(pool: DbPool, bus: Arc<dyn Bus<DomainEvent>>, settings: RoomSettings) -> Self {
        Self {
            pool,
            bus,
            settings: Arc::new(settings),
            draining: Arc::default(),
        }
    }

    /// From now on, no room is opened and no seat taken here; seats already held are
    /// confirmed as before.
    pub fn stop_seating(&self) {
        self.draining.store(true, Ordering::Release);
    }

    fn seating(&self) -> Result<(), RoomError> {
        match self.draining.load(Ordering::Acquire) {
            true => Err(RoomError::Draining),
            false => Ok(()),
        }
    }

    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    pub async fn create(&self, host: User, new: NewRoom) -> Result<RoomDetail, RoomError> {
        self.seating()?;
        let max_seats = self.settings.max_seats_per_user;
        let detail = db::run(&self.pool, move |conn| {
            let row = rules::create(conn, &host, &new, max_seats)?;
            Ok::<_, RoomError>(queries::detail(conn, &row)?)
        })
        .await?;
        tracing::info!(room_id = %detail.room.id, "room created");
        self.bus
            .publish(DomainEvent::RoomCreated {
                room: detail.room.clone(),
            })
            .await;
        Ok(detail)
    }

    pub async fn get(&self, room_id: RoomId) -> Result<RoomDetail, RoomError> {
        db::run(&self.pool, move |conn| {
            let row = queries::find_room(conn, room_id)?.ok_or(RoomError::NotFound)?;
            Ok(queries::detail(conn, &row)?)
        })
        .await
    }

    pub async fn list(
        &self,
        filter: RoomFilter,
        limit: i64,
        after: Option<PageCursor>,
    ) -> Result<(Vec<RoomView>, Option<PageCursor>), RoomError> {
        db::run(&self.pool, move |conn| {
            Ok(queries::list(conn, &filter, limit, after.as_ref())?)
        })
        .await
    }

    /// Takes a seat (or confirms the one the user has) and returns the room and the seat.
    pub async fn join(
        &self,
        room_id: RoomId,
        user: User,
    ) -> Result<(RoomDetail, ParticipantView), RoomError> {
        if self.seating().is_err() {
            // A seat held already is only confirmed: that is not a new one.
            self.require_seat(room_id, user.user_id())
                .await
                .map_err(|_| RoomError::Draining)?;
        }
        let max_seats = self.settings.max_seats_per_user;
        let (detail, seat, newly_joined) = db::run(&self.pool, move |conn| {
            let joined = rules::join(conn, room_id, user.user_id(), max_seats)?;
            let detail = queries::detail(conn, &joined.room)?;
            let seat = ParticipantView::new(&joined.seat, &user.public());
            Ok::<_, RoomError>((detail, seat, joined.newly_joined))
        })
        .await?;
        if newly_joined {
            tracing::info!(%room_id, user_id = %seat.user_id, "joined");
            self.bus
                .publish(DomainEvent::ParticipantJoined {
                    room_id,
                    participant: seat.clone(),
                })
                .await;
            self.bus
                .publish(DomainEvent::RoomUpdated {
                    room: detail.room.clone(),
                })
                .await;
        }
        Ok((detail, seat))
    }

    /// Frees the user's seat; the room ends when it was the last one.
    pub async fn leave(&self, room_id: RoomId, user_id: UserId) -> Result<LeaveResult, RoomError> {
        let (left, view) = db::run(&self.pool, move |conn| {
            let left = rules::leave(conn, room_id, user_id)?;
            let view = queries::detail(conn, &left.room)?.room;
            Ok::<_, RoomError>((left, view))
        })
        .await?;
        let new_host_id = left.new_host;
        tracing::info!(%room_id, %user_id, room_ended = left.room_ended, "left");
        self.bus
            .publish(DomainEvent::ParticipantLeft {
                room_id,
                user_id,
                new_host_id,
            })
            .await;
        self.publish_room_change(view, left.room_ended, EndReason::LastLeft)
            .await;
        Ok(LeaveResult {
            room_ended: left.room_ended,
            new_host_id,
        })
    }

    pub async fn kick(
        &self,
        room_id: RoomId,
        host_id: UserId,
        target_id: UserId,
    ) -> Result<(), RoomError> {
        let (kicked, view) = db::run(&self.pool, move |conn| {
            let kicked = rules::kick(conn, room_id, host_id, target_id)?;
            let view = queries::detail(conn, &kicked.room)?.room;
            Ok::<_, RoomError>((kicked, view))
        })
        .await?;
        if kicked.newly_kicked {
            tracing::info!(%room_id, user_id = %target_id, "kicked");
            self.bus
                .publish(DomainEvent::ParticipantKicked {
                    room_id,
                    user_id: target_id,
                })
                .await;
        }
        if kicked.was_seated {
            self.publish_room_change(view, false, EndReason::LastLeft)
                .await;
        }
        Ok(())
    }

    /// The host ends the room for everyone.
    pub async fn end(&self, room_id: RoomId, host_id: UserId) -> Result<RoomView, RoomError> {
        let view = db::run(&self.pool, move |conn| {
            let ended = rules::end(conn, room_id, host_id)?;
            Ok::<_, RoomError>(queries::detail(conn, &ended.room)?.room)
        })
        .await?;
        tracing::info!(%room_id, "room ended by its host");
        self.publish_room_change(view.clone(), true, EndReason::HostEnded)
            .await;
        Ok(view)
    }

    /// An instance admin ends the room; the room hears it as ended by its host.
    pub async fn end_by_admin(
        &self,
        room_id: RoomId,
        admin: Option<UserId>,
    ) -> Result<RoomView, RoomError> {
        let view = db::run(&self.pool, move |conn| {
            let ended = rules::end_by_admin(conn, room_id, admin)?;
            Ok::<_, RoomError>(queries::detail(conn, &ended.room)?.room)
        })
        .await?;
        tracing::info!(%room_id, "room ended by an admin");
        self.publish_room_change(view.clone(), true, EndReason::HostEnded)
            .await;
        Ok(view)
    }

    /// Do the two users hold seats in one live room?
    pub async fn share_live_room(&self, a: UserId, b: UserId) -> Result<bool, RoomError> {
        db::run(&self.pool, move |conn| {
            queries::share_live_room(conn, a, b).map_err(Into::into)
        })
        .await
    }

    /// Is the user seated in this live room (the database's word, not a socket's memory)?
    pub async fn require_seat(&self, room_id: RoomId, user_id: UserId) -> Result<(), RoomError> {
        db::run(&self.pool, move |conn| {
            rules::seat_in_live_room(conn, room_id, user_id).map(|_| ())
        })
        .await
    }

    /// Changes a seat's mic, camera or hand; the room hears of it only when something changed.
    pub async fn change_seat(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        target_id: UserId,
        change: SeatChange,
    ) -> Result<(), RoomError> {
        let changed = db::run(&self.pool, move |conn| {
            rules::change_seat(conn, room_id, actor_id, target_id, change)
        })
        .await?;
        if changed {
            self.bus
                .publish(DomainEvent::SeatChanged {
                    room_id,
                    user_id: target_id,
                    change,
                })
                .await;
        }
        Ok(())
    }

    async fn publish_room_change(&self, room: RoomView, ended: bool, reason: EndReason) {
        let event = if ended {
            DomainEvent::RoomEnded { room, reason }
        } else {
            DomainEvent::RoomUpdated { room }
        };
        self.bus.publish(event).await;
    }
}
