//! The room rules, each in one write transaction: create, join, leave (with host hand-over
//! and the room ending when the last person goes), kick and end. What hosts and co-hosts do
//! besides kicking and ending is in `moderation`.

use diesel::prelude::*;

use super::domain::{
    LanguageCode, Level, Role, RoomStatus, RoomTitle, SeatLimit, Topic, search_keys,
};
use super::model::{ParticipantRow, RoomRow};
use super::queries::{find_room, find_seat};
use crate::auth::User;
use crate::db::schema::{room_participants, rooms, users};
use crate::db::{self, DbConnection, DbError, write_transaction};
use crate::ids::{RoomId, UserId};
use crate::moderation::audit::{self, AuditAction, AuditEntry};

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("room not found")]
    NotFound,
    #[error("room has ended")]
    Ended,
    #[error("room is full")]
    Full,
    #[error("kicked from this room")]
    Kicked,
    #[error("only the host may do this")]
    NotHost,
    #[error("only a host or co-host may do this")]
    NotCohost,
    #[error("not something one does to oneself")]
    InvalidTarget,
    #[error("the room is locked")]
    RoomLocked,
    #[error("wrong room key")]
    BadRoomKey,
    #[error("muted by a host")]
    MutedByHost,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    #[error("not in this room")]
    NotInRoom,
    #[error("the host cannot kick themself")]
    CannotKickSelf,
    #[error("that user has no seat in this room")]
    ParticipantNotFound,
    #[error("seated in too many rooms already")]
    TooManySeats,
    /// Someone seated there blocked the joiner, or the joiner blocked someone seated there.
    #[error("a block stands between this user and someone seated")]
    Blocked,
    #[error("this server is stopping")]
    Draining,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RoomError {
    fn from(err: diesel::result::Error) -> Self {
        RoomError::Db(err.into())
    }
}

pub struct NewRoom {
    pub title: RoomTitle,
    pub topic: Option<Topic>,
    pub language: LanguageCode,
    pub second_language: Option<LanguageCode>,
    pub level: Level,
    pub seats: SeatLimit,
    pub mic_required: bool,
    pub no_mic: bool,
}

/// `SELECT id FROM $table WHERE id = $id FOR UPDATE` where rows have locks (PostgreSQL,
/// MySQL): the row is the transaction's until it ends. SQLite's immediate transaction already
/// holds the whole database.
macro_rules! lock_row {
    ($conn:expr, $table:ident, $id:expr) => {{
        let id: String = $id;
        let locked = match $conn {
            DbConnection::Postgres(c) => $table::table
                .find(id)
                .select($table::id)
                .for_update()
                .first::<String>(c)
                .optional(),
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(c) => $table::table
                .find(id)
                .select($table::id)
                .for_update()
                .first::<String>(c)
                .optional(),
            DbConnection::Sqlite(_) => Ok(None),
        };
        locked?;
    }};
}

/// Refuses a new seat to someone who already holds `max` in live rooms. Their own row is
/// locked first (PostgreSQL, MySQL), so two joins of one person on two replicas take turns;
/// SQLite's immediate transaction already serializes every writer.
fn check_seat_count(conn: &mut DbConnection, user_id: UserId, max: u32) -> Result<(), RoomError> {
    lock_row!(conn, users, user_id.to_string());
    let held: i64 = room_participants::table
        .inner_join(rooms::table)
        .filter(room_participants::user_id.eq(user_id.to_string()))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .filter(rooms::status.eq(RoomStatus::Live.as_str()))
        .count()
        .get_result(conn)?;
    if held >= i64::from(max) {
        return Err(RoomError::TooManySeats);
    }
    Ok(())
}

pub fn create(
    conn: &mut DbConnection,
    host: &User,
    new: &NewRoom,
    max_seats: u32,
) -> Result<RoomRow, RoomError> {
    let now = db::now();
    let topic = new.topic.as_ref().map(|t| t.as_str().to_owned());
    let room_id = RoomId::random();
    let (topic_key, search_text) = search_keys(new.title.as_str(), topic.as_deref());
    let room = RoomRow {
        id: room_id.to_string(),
        title: new.title.as_str().to_owned(),
        topic_key,
        search_text,
        topic,
        language: new.language.as_str().to_owned(),
        level: new.level.as_str().to_owned(),
        max_participants: new.seats.get(),
        participant_count: 1,
        status: RoomStatus::Live.as_str().to_owned(),
        host_id: host.id.clone(),
        created_by: host.id.clone(),
        created_at: now,
        updated_at: now,
        ended_at: None,
        second_language: new.second_language.as_ref().map(|l| l.as_str().to_owned()),
        mic_required: new.mic_required,
        no_mic: new.no_mic,
        lock_key: None,
        slow_mode_secs: 0,
    };
    let mut seat = new_seat(room_id, host.user_id(), Role::Host, now);
    // In a listen-and-chat room every microphone starts muted.
    seat.is_muted = room.no_mic;
    write_transaction(conn, |conn| {
        check_seat_count(conn, host.user_id(), max_seats)?;
        diesel::insert_into(rooms::table)
            .values(&room)
            .execute(conn)?;
        diesel::insert_into(room_participants::table)
            .values(&seat)
            .execute(conn)?;
        Ok::<_, RoomError>(())
    })?;
    Ok(room)
}

fn new_seat(
    room_id: RoomId,
    user_id: UserId,
    role: Role,
    now: chrono::NaiveDateTime,
) -> ParticipantRow {
    ParticipantRow {
        id: uuid::Uuid::new_v4().to_string(),
        room_id: room_id.to_string(),
        user_id: user_id.to_string(),
        role: role.as_str().to_owned(),
        is_muted: false,
        is_video_off: false,
        hand_raised: false,
        is_kicked: false,
        joined_at: now,
        left_at: None,
        mic_locked: false,
        camera_locked: false,
        last_chat_at: None,
    }
}

/// The room, locked until the transaction ends, and required to exist. Every rule that
/// changes seats starts here: `SELECT … FOR UPDATE` on PostgreSQL and MySQL; on SQLite the
/// immediate transaction already holds the database's write lock.
pub(super) fn locked_room(conn: &mut DbConnection, room_id: RoomId) -> Result<RoomRow, RoomError> {
    lock_row!(conn, rooms, room_id.to_string());
    find_room(conn, room_id)?.ok_or(RoomError::NotFound)
}

/// The user's seat in a live room: the one rule behind acting inside a room (chat, mic,
/// camera, hand).
pub fn seat_in_live_room(
    conn: &mut DbConnection,
    room_id: RoomId,
    user_id: UserId,
) -> Result<(RoomRow, ParticipantRow), RoomError> {
    let room = find_room(conn, room_id)?.ok_or(RoomError::NotFound)?;
    if !room.is_live() {
        return Err(RoomError::Ended);
    }
    let seat = find_seat(conn, room_id, user_id)?
        .filter(ParticipantRow::is_active)
        .ok_or(RoomError::NotInRoom)?;
    Ok((room, seat))
}

/// Stores the room's seat count and stamps it changed; `room` is then what was stored (its
/// view goes out in the room's events, which clients order by `updatedAt`).
fn store_participant_count(conn: &mut DbConnection, room: &mut RoomRow) -> QueryResult<()> {
    room.updated_at = db::now();
    diesel::update(rooms::table.find(&room.id))
        .set((
            rooms::participant_count.eq(room.participant_count),
            rooms::updated_at.eq(room.updated_at),
        ))
        .execute(conn)
        .map(|_| ())
}

#[derive(Debug)]
pub struct Joined {
    pub room: RoomRow,
    pub seat: ParticipantRow,
    /// False when the user already had this seat (joining again is not an error).
    pub newly_joined: bool,
}

/// Refuses a new seat in a locked room without its key.
fn check_room_key(room: &RoomRow, given: Option<&str>) -> Result<(), RoomError> {
    match (room.lock_key.as_deref(), given) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(RoomError::RoomLocked),
        (Some(key), Some(given)) if constant_time_eq(key.as_bytes(), given.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(RoomError::BadRoomKey),
    }
}

/// Compares without stopping at the first difference (a key is a secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn join(
    conn: &mut DbConnection,
    room_id: RoomId,
    user_id: UserId,
    room_key: Option<&str>,
    max_seats: u32,
) -> Result<Joined, RoomError> {
    write_transaction(conn, |conn| {
        let mut room = locked_room(conn, room_id)?;
        if !room.is_live() {
            return Err(RoomError::Ended);
        }
        let existing = find_seat(conn, room_id, user_id)?;
        match &existing {
            Some(seat) if seat.is_kicked => return Err(RoomError::Kicked),
            Some(seat) if seat.is_active() => {
                return Ok(Joined {
                    room,
                    seat: seat.clone(),
                    newly_joined: false,
                });
            }
            _ => {}
        }
        check_room_key(&room, room_key)?;
        if crate::moderation::blocks::conflict_in_room(conn, room_id, user_id)? {
            return Err(RoomError::Blocked);
        }
        if room.participant_count >= room.max_participants {
            return Err(RoomError::Full);
        }
        check_seat_count(conn, user_id, max_seats)?;
        let now = db::now();
        let seat = match existing {
            // Back after leaving: the same row, a fresh seat.
            Some(mut seat) => {
                seat.role = Role::Participant.as_str().to_owned();
                seat.is_muted = room.no_mic;
                seat.is_video_off = false;
                seat.hand_raised = false;
                seat.mic_locked = false;
                seat.camera_locked = false;
                seat.joined_at = now;
                seat.left_at = None;
                diesel::update(room_participants::table.find(&seat.id))
                    .set((
                        room_participants::role.eq(&seat.role),
                        room_participants::is_muted.eq(room.no_mic),
                        room_participants::is_video_off.eq(false),
                        room_participants::hand_raised.eq(false),
                        room_participants::mic_locked.eq(false),
                        room_participants::camera_locked.eq(false),
                        room_participants::joined_at.eq(now),
                        room_participants::left_at.eq(None::<chrono::NaiveDateTime>),
                    ))
                    .execute(conn)?;
                seat
            }
            None => {
                let mut seat = new_seat(room_id, user_id, Role::Participant, now);
                seat.is_muted = room.no_mic;
                diesel::insert_into(room_participants::table)
                    .values(&seat)
                    .execute(conn)?;
                seat
            }
        };
        room.participant_count += 1;
        store_participant_count(conn, &mut room)?;
        Ok(Joined {
            room,
            seat,
            newly_joined: true,
        })
    })
}

#[derive(Debug)]
pub struct Left {
    pub room: RoomRow,
    /// The seat was the last one: the room is now ENDED.
    pub room_ended: bool,
    /// The user who became host because the host left.
    pub new_host: Option<UserId>,
}

/// Frees the user's seat. Used for leaving, for a released seat after the grace period, and
/// for anything else that takes a person out without banning them.
pub fn leave(conn: &mut DbConnection, room_id: RoomId, user_id: UserId) -> Result<Left, RoomError> {
    write_transaction(conn, |conn| {
        let room = locked_room(conn, room_id)?;
        let seat = find_seat(conn, room_id, user_id)?
            .filter(ParticipantRow::is_active)
            .ok_or(RoomError::NotInRoom)?;
        let now = db::now();
        diesel::update(room_participants::table.find(&seat.id))
            .set((
                room_participants::left_at.eq(Some(now)),
                room_participants::hand_raised.eq(false),
                room_participants::role.eq(Role::Participant.as_str()),
            ))
            .execute(conn)?;
        vacate(conn, room, &seat)
    })
}

/// After a seat is emptied: count it, end the room when nobody is left, or hand HOST on.
fn vacate(
    conn: &mut DbConnection,
    mut room: RoomRow,
    seat: &ParticipantRow,
) -> Result<Left, RoomError> {
    let now = db::now();
    room.participant_count = (room.participant_count - 1).max(0);
    if room.participant_count == 0 {
        room.status = RoomStatus::Ended.as_str().to_owned();
        room.ended_at = Some(now);
        room.updated_at = now;
        diesel::update(rooms::table.find(&room.id))
            .set((
                rooms::participant_count.eq(0),
                rooms::status.eq(&room.status),
                rooms::ended_at.eq(room.ended_at),
                rooms::updated_at.eq(now),
            ))
            .execute(conn)?;
        return Ok(Left {
            room,
            room_ended: true,
            new_host: None,
        });
    }
    store_participant_count(conn, &mut room)?;
    let mut new_host = None;
    if seat.user_id == room.host_id {
        // Hand HOST to the longest-present co-host, else the longest-present participant: who
        // users expect when the host drops.
        let seated: Vec<ParticipantRow> = room_participants::table
            .filter(room_participants::room_id.eq(&room.id))
            .filter(room_participants::left_at.is_null())
            .filter(room_participants::is_kicked.eq(false))
            .order((
                room_participants::joined_at.asc(),
                room_participants::id.asc(),
            ))
            .select(ParticipantRow::as_select())
            .load(conn)?;
        let next = seated
            .iter()
            .find(|s| s.role() == Role::Cohost)
            .or(seated.first())
            .ok_or(diesel::result::Error::NotFound)?;
        diesel::update(room_participants::table.find(&next.id))
            .set(room_participants::role.eq(Role::Host.as_str()))
            .execute(conn)?;
        diesel::update(rooms::table.find(&room.id))
            .set(rooms::host_id.eq(&next.user_id))
            .execute(conn)?;
        room.host_id = next.user_id.clone();
        new_host = Some(UserId::from_stored(&next.user_id));
    }
    Ok(Left {
        room,
        room_ended: false,
        new_host,
    })
}

#[derive(Debug)]
pub struct Kicked {
    pub room: RoomRow,
    /// False when the user was already banned from the room (kicking again changes nothing).
    pub newly_kicked: bool,
    /// The user held a seat until now.
    pub was_seated: bool,
}

/// Whose seat a moderation call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Needs {
    /// The host's only (`NOT_HOST` for anyone else).
    Host,
    /// A host's or co-host's (`NOT_COHOST` for anyone else).
    Moderator,
}

/// The actor's active seat in the live, locked room, if it is the seat the call `needs`.
pub(super) fn acting_seat(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    needs: Needs,
) -> Result<(RoomRow, ParticipantRow), RoomError> {
    let room = locked_room(conn, room_id)?;
    if !room.is_live() {
        return Err(RoomError::Ended);
    }
    let fits = |role: Role| match needs {
        Needs::Host => role == Role::Host,
        Needs::Moderator => role.moderates(),
    };
    let refusal = match needs {
        Needs::Host => RoomError::NotHost,
        Needs::Moderator => RoomError::NotCohost,
    };
    let seat = find_seat(conn, room_id, actor_id)?
        .filter(ParticipantRow::is_active)
        .filter(|s| fits(s.role()))
        .ok_or(refusal)?;
    Ok((room, seat))
}

/// A co-host acts on participants only; the host on anyone.
pub(super) fn may_act_on(actor: &ParticipantRow, target: &ParticipantRow) -> Result<(), RoomError> {
    match (actor.role(), target.role()) {
        (Role::Host, _) | (_, Role::Participant) => Ok(()),
        _ => Err(RoomError::NotHost),
    }
}

/// Kicks `target_id` out for good (host, or a co-host kicking a participant).
pub fn kick(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    target_id: UserId,
) -> Result<Kicked, RoomError> {
    write_transaction(conn, |conn| {
        let (mut room, actor) = acting_seat(conn, room_id, actor_id, Needs::Moderator)?;
        if target_id == actor_id {
            return Err(RoomError::CannotKickSelf);
        }
        let seat = find_seat(conn, room_id, target_id)?.ok_or(RoomError::ParticipantNotFound)?;
        if seat.is_active() {
            may_act_on(&actor, &seat)?;
        }
        if seat.is_kicked {
            return Ok(Kicked {
                room,
                newly_kicked: false,
                was_seated: false,
            });
        }
        let was_seated = seat.is_active();
        let now = db::now();
        audit::record(
            conn,
            &AuditEntry::new(Some(actor_id), AuditAction::Kick)
                .target(target_id)
                .room(room_id),
        )?;
        diesel::update(room_participants::table.find(&seat.id))
            .set((
                room_participants::is_kicked.eq(true),
                room_participants::hand_raised.eq(false),
                room_participants::left_at.eq(Some(seat.left_at.unwrap_or(now))),
            ))
            .execute(conn)?;
        if was_seated {
            // The host stays, so the room never empties here.
            room = vacate(conn, room, &seat)?.room;
        }
        Ok(Kicked {
            room,
            newly_kicked: true,
            was_seated,
        })
    })
}

#[derive(Debug)]
pub struct Ended {
    pub room: RoomRow,
    /// Everyone who still had a seat.
    pub removed: Vec<UserId>,
}

/// The host ends the room: every seat is freed at once.
pub fn end(conn: &mut DbConnection, room_id: RoomId, host_id: UserId) -> Result<Ended, RoomError> {
    write_transaction(conn, |conn| {
        let room = locked_room(conn, room_id)?;
        if !room.is_live() {
            return Err(RoomError::Ended);
        }
        if room.host() != host_id {
            return Err(RoomError::NotHost);
        }
        audit::record(
            conn,
            &AuditEntry::new(Some(host_id), AuditAction::EndRoom).room(room_id),
        )?;
        close(conn, room, room_id)
    })
}

/// An instance admin (`None`: the command line) ends the room, as its host could; the audit
/// line is written in the same transaction.
pub fn end_by_admin(
    conn: &mut DbConnection,
    room_id: RoomId,
    admin: Option<UserId>,
) -> Result<Ended, RoomError> {
    write_transaction(conn, |conn| {
        let room = locked_room(conn, room_id)?;
        if !room.is_live() {
            return Err(RoomError::Ended);
        }
        let ended = close(conn, room, room_id)?;
        audit::record(
            conn,
            &AuditEntry::new(admin, AuditAction::EndRoom)
                .room(room_id)
                .details(serde_json::json!({ "byAdmin": true })),
        )?;
        Ok(ended)
    })
}

/// Frees every seat of a live, locked room and marks it ENDED.
fn close(conn: &mut DbConnection, mut room: RoomRow, room_id: RoomId) -> Result<Ended, RoomError> {
    let now = db::now();
    let room_key = room_id.to_string();
    let active = room_participants::table
        .filter(room_participants::room_id.eq(&room_key))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false));
    let removed: Vec<String> = active.select(room_participants::user_id).load(conn)?;
    let removed = removed.iter().map(|id| UserId::from_stored(id)).collect();
    diesel::update(active)
        .set((
            room_participants::left_at.eq(Some(now)),
            room_participants::hand_raised.eq(false),
        ))
        .execute(conn)?;
    room.status = RoomStatus::Ended.as_str().to_owned();
    room.participant_count = 0;
    room.ended_at = Some(now);
    room.updated_at = now;
    diesel::update(rooms::table.find(room_id.to_string()))
        .set((
            rooms::status.eq(&room.status),
            rooms::participant_count.eq(0),
            rooms::ended_at.eq(room.ended_at),
            rooms::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Ended { room, removed })
}

/// A change to one seat's live state: the participant's own mic, camera or hand, or the
/// host lowering someone else's hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SeatChange {
    Mic { muted: bool },
    Camera { off: bool },
    Hand { raised: bool },
}

/// Applies `change` to `target_id`'s seat on behalf of `actor_id`; returns whether anything
/// changed. Only a host or co-host may act on another seat, and only to lower a hand. Nobody
/// unmutes a microphone a host locked (or in a `noMic` room), nor starts a locked camera.
pub fn change_seat(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    target_id: UserId,
    change: SeatChange,
) -> Result<bool, RoomError> {
    write_transaction(conn, |conn| {
        // Locked, so that a hard mute and an unmute of the same seat take turns.
        let room = locked_room(conn, room_id)?;
        if !room.is_live() {
            return Err(RoomError::Ended);
        }
        let actor = find_seat(conn, room_id, actor_id)?
            .filter(ParticipantRow::is_active)
            .ok_or(RoomError::NotInRoom)?;
        if actor_id != target_id {
            let lowering_a_hand = change == SeatChange::Hand { raised: false };
            if !lowering_a_hand {
                return Err(RoomError::NotHost);
            }
            if !actor.role().moderates() {
                return Err(RoomError::NotCohost);
            }
        }
        let seat = find_seat(conn, room_id, target_id)?
            .filter(ParticipantRow::is_active)
            .ok_or(RoomError::ParticipantNotFound)?;
        match change {
            SeatChange::Mic { muted: false } if seat.mic_locked || room.no_mic => {
                return Err(RoomError::MutedByHost);
            }
            SeatChange::Camera { off: false } if seat.camera_locked => {
                return Err(RoomError::MutedByHost);
            }
            _ => {}
        }
        let target = room_participants::table.find(&seat.id);
        let updated = match change {
            SeatChange::Mic { muted } if seat.is_muted != muted => diesel::update(target)
                .set(room_participants::is_muted.eq(muted))
                .execute(conn)?,
            SeatChange::Camera { off } if seat.is_video_off != off => diesel::update(target)
                .set(room_participants::is_video_off.eq(off))
                .execute(conn)?,
            SeatChange::Hand { raised } if seat.hand_raised != raised => diesel::update(target)
                .set(room_participants::hand_raised.eq(raised))
                .execute(conn)?,
            _ => 0,
        };
        Ok(updated > 0)
    })
}
