//! `Rooms`: runs the rules off the async threads and publishes what changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::lobby::{Link, Lobby, RoomPage};
use super::model::{ParticipantView, RoomDetail, RoomView};
use super::moderation::{self, RoomUpdate};
use super::queries::{self, LobbyCursor, RoomFilter};
use super::rules::{self, NewRoom, RoomError, SeatChange};
use crate::auth::User;
use crate::cluster::Bus;
use crate::config::RoomSettings;
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
    lobby: Arc<Lobby>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveResult {
    pub room_ended: bool,
    pub new_host_id: Option<UserId>,
}

impl Rooms {
    /// `link` tells whether the other replicas' events reach this one (the lobby's memory).
    pub fn new(
        pool: DbPool,
        bus: Arc<dyn Bus<DomainEvent>>,
        settings: RoomSettings,
        link: Link,
    ) -> Self {
        let lobby = Arc::new(Lobby::new(link));
        let observer = Arc::clone(&lobby);
        bus.observe(Arc::new(move |event: &DomainEvent| observer.apply(event)));
        Self {
            pool,
            bus,
            lobby,
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

    /// A lobby page's JSON body: from memory when it can answer (src/rooms/lobby.rs), else
    /// from the database. Both give the same bytes.
    pub async fn lobby_page(
        &self,
        filter: RoomFilter,
        limit: i64,
        after: Option<LobbyCursor>,
    ) -> Result<Vec<u8>, RoomError> {
        if let Some(body) = self.lobby.page(&filter, limit, after.as_ref()) {
            return Ok(body);
        }
        self.lobby_page_from_db(filter, limit, after).await
    }

    /// The same page, always from the database.
    pub async fn lobby_page_from_db(
        &self,
        filter: RoomFilter,
        limit: i64,
        after: Option<LobbyCursor>,
    ) -> Result<Vec<u8>, RoomError> {
        let (rooms, next) = db::run(&self.pool, move |conn| {
            queries::list(conn, &filter, limit, after.as_ref())
        })
        .await?;
        Ok(RoomPage::body(rooms, next))
    }

    /// Every live room, from the database.
    pub async fn live_from_db(&self) -> Result<Vec<RoomView>, RoomError> {
        Ok(db::run(&self.pool, queries::all_live).await?)
    }

    /// The lobby this process serves from memory.
    pub fn lobby(&self) -> &Lobby {
        &self.lobby
    }

    /// Keeps the lobby in memory until `shutdown`: loads it from the database now and after
    /// each reconnection of the link to the other replicas (the Bus's observer follows the
    /// events in between).
    pub async fn keep_lobby(
        self,
        mut reconnections: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        reconnections.borrow_and_update();
        let mut stale = true;
        loop {
            if stale {
                if let Some(epoch) = self.lobby.link_epoch() {
                    let ticket = self.lobby.begin_load();
                    match self.live_from_db().await {
                        Ok(live) => {
                            tracing::debug!(rooms = live.len(), epoch, "lobby loaded");
                            self.lobby.load(ticket, epoch, live);
                            stale = false;
                        }
                        Err(e) => tracing::warn!(error = %e, "lobby not loaded; retrying"),
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = reconnections.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    reconnections.borrow_and_update();
                    self.lobby.forget();
                    stale = true;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)), if stale => {}
            }
        }
    }

    /// Takes a seat (or confirms the one the user has) and returns the room and the seat.
    pub async fn join(
        &self,
        room_id: RoomId,
        user: User,
        room_key: Option<String>,
    ) -> Result<(RoomDetail, ParticipantView), RoomError> {
        if self.seating().is_err() {
            // A seat held already is only confirmed: that is not a new one.
            self.require_seat(room_id, user.user_id())
                .await
                .map_err(|_| RoomError::Draining)?;
        }
        let max_seats = self.settings.max_seats_per_user;
        let (detail, seat, newly_joined) = db::run(&self.pool, move |conn| {
            let joined = rules::join(
                conn,
                room_id,
                user.user_id(),
                room_key.as_deref(),
                max_seats,
            )?;
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

    /// The host makes or unmakes a co-host; the room hears the seat's new view.
    pub async fn set_cohost(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        target_id: UserId,
        cohost: bool,
    ) -> Result<ParticipantView, RoomError> {
        let (view, changed) = db::run(&self.pool, move |conn| {
            let (seat, changed) =
                moderation::set_cohost(conn, room_id, actor_id, target_id, cohost)?;
            Ok::<_, RoomError>((queries::seat_view(conn, &seat)?, changed))
        })
        .await?;
        if changed {
            tracing::info!(%room_id, user_id = %target_id, cohost, "co-host changed");
            self.publish_seat(room_id, view.clone()).await;
        }
        Ok(view)
    }

    /// The host hands the room over; both seats' views and the room's go out.
    pub async fn transfer_host(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        target_id: UserId,
    ) -> Result<RoomDetail, RoomError> {
        let (detail, seats) = db::run(&self.pool, move |conn| {
            let moved = moderation::transfer_host(conn, room_id, actor_id, target_id)?;
            let seats = [
                queries::seat_view(conn, &moved.old_host)?,
                queries::seat_view(conn, &moved.new_host)?,
            ];
            Ok::<_, RoomError>((queries::detail(conn, &moved.room)?, seats))
        })
        .await?;
        tracing::info!(%room_id, new_host = %target_id, "host handed over");
        for seat in seats {
            self.publish_seat(room_id, seat).await;
        }
        self.bus
            .publish(DomainEvent::RoomUpdated {
                room: detail.room.clone(),
            })
            .await;
        Ok(detail)
    }

    /// A hard mute or its lifting: the seat's view, and the mute as current clients know it.
    pub async fn hard_mute(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        target_id: UserId,
        mic: Option<bool>,
        camera: Option<bool>,
    ) -> Result<ParticipantView, RoomError> {
        let (muted, view) = db::run(&self.pool, move |conn| {
            let muted = moderation::hard_mute(conn, room_id, actor_id, target_id, mic, camera)?;
            let view = queries::seat_view(conn, &muted.seat)?;
            Ok::<_, RoomError>((muted, view))
        })
        .await?;
        if muted.changed {
            tracing::info!(%room_id, user_id = %target_id, ?mic, ?camera, "hard mute");
            self.publish_seat(room_id, view.clone()).await;
        }
        if muted.mic_muted {
            self.publish_change(room_id, target_id, SeatChange::Mic { muted: true })
                .await;
        }
        if muted.camera_off {
            self.publish_change(room_id, target_id, SeatChange::Camera { off: true })
                .await;
        }
        Ok(view)
    }

    /// Every microphone but the actor's is muted (each person may unmute); returns how many.
    pub async fn mute_all(&self, room_id: RoomId, actor_id: UserId) -> Result<usize, RoomError> {
        let muted = db::run(&self.pool, move |conn| {
            moderation::mute_all(conn, room_id, actor_id)
        })
        .await?;
        tracing::info!(%room_id, muted = muted.len(), "everyone muted");
        for user in &muted {
            self.publish_change(room_id, *user, SeatChange::Mic { muted: true })
                .await;
        }
        Ok(muted.len())
    }

    /// Locks the room with a fresh key (returned) or unlocks it (`None`).
    pub async fn set_lock(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        locked: bool,
    ) -> Result<Option<String>, RoomError> {
        let key = locked.then(moderation::new_room_key);
        let view = db::run(&self.pool, move |conn| {
            let room = moderation::set_lock(conn, room_id, actor_id, key)?;
            Ok::<_, RoomError>((room.lock_key.clone(), queries::detail(conn, &room)?.room))
        })
        .await?;
        tracing::info!(%room_id, locked, "room lock changed");
        self.bus
            .publish(DomainEvent::RoomUpdated { room: view.1 })
            .await;
        Ok(view.0)
    }

    /// The room's key, for its hosts and co-hosts.
    pub async fn room_key(
        &self,
        room_id: RoomId,
        actor_id: UserId,
    ) -> Result<Option<String>, RoomError> {
        db::run(&self.pool, move |conn| {
            moderation::room_key(conn, room_id, actor_id)
        })
        .await
    }

    /// Live settings; the lobby and the room hear the new view.
    pub async fn update(
        &self,
        room_id: RoomId,
        actor_id: UserId,
        change: RoomUpdate,
    ) -> Result<RoomDetail, RoomError> {
        let (detail, muted) = db::run(&self.pool, move |conn| {
            let updated = moderation::update(conn, room_id, actor_id, change)?;
            Ok::<_, RoomError>((queries::detail(conn, &updated.room)?, updated.muted))
        })
        .await?;
        tracing::info!(%room_id, "room settings changed");
        self.bus
            .publish(DomainEvent::RoomUpdated {
                room: detail.room.clone(),
            })
            .await;
        for user in muted {
            self.publish_change(room_id, user, SeatChange::Mic { muted: true })
                .await;
        }
        Ok(detail)
    }

    /// Which of the seat's media a new SFU session starts muted: (microphone, camera).
    pub async fn forced_mutes(
        &self,
        room_id: RoomId,
        user_id: UserId,
    ) -> Result<(bool, bool), RoomError> {
        db::run(&self.pool, move |conn| {
            moderation::forced_mutes(conn, room_id, user_id)
        })
        .await
    }

    async fn publish_seat(&self, room_id: RoomId, participant: ParticipantView) {
        self.bus
            .publish(DomainEvent::ParticipantUpdated {
                room_id,
                participant,
            })
            .await;
    }

    async fn publish_change(&self, room_id: RoomId, user_id: UserId, change: SeatChange) {
        self.bus
            .publish(DomainEvent::SeatChanged {
                room_id,
                user_id,
                change,
            })
            .await;
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
