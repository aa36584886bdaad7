//! What hosts and co-hosts do to a room besides kicking and ending it (docs/MODERATION.md):
//! naming co-hosts, handing the room over, hard mutes, muting everyone, the lock and its key,
//! and the live settings. One write transaction each, with the room row locked, the actor's
//! role read inside it, and the audit line written in it.

use diesel::prelude::*;
use rand::Rng;
use serde_json::json;

use super::domain::{LanguageCode, Level, Role, RoomTitle, SeatLimit, Topic, search_keys};
use super::model::{ParticipantRow, RoomRow};
use super::queries::find_seat;
use super::rules::{Needs, RoomError, acting_seat, may_act_on};
use crate::db::schema::{room_participants, rooms};
use crate::db::{self, DbConnection, write_transaction};
use crate::ids::{RoomId, UserId};
use crate::moderation::audit::{self, AuditAction, AuditEntry};

/// Slow mode's longest interval.
pub const MAX_SLOW_MODE_SECS: i32 = 300;
/// Characters in a room key: 16 url-safe characters, ~95 bits.
const ROOM_KEY_LEN: usize = 16;
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A fresh random room key for invite links.
pub fn new_room_key() -> String {
    let mut rng = rand::thread_rng();
    (0..ROOM_KEY_LEN)
        .map(|_| char::from(KEY_ALPHABET[rng.gen_range(0..KEY_ALPHABET.len())]))
        .collect()
}

/// Someone else's seat, taken now.
fn other_seat(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    target_id: UserId,
) -> Result<ParticipantRow, RoomError> {
    if actor_id == target_id {
        return Err(RoomError::InvalidTarget);
    }
    find_seat(conn, room_id, target_id)?
        .filter(ParticipantRow::is_active)
        .ok_or(RoomError::ParticipantNotFound)
}

fn set_role(conn: &mut DbConnection, seat: &mut ParticipantRow, role: Role) -> QueryResult<()> {
    seat.role = role.as_str().to_owned();
    diesel::update(room_participants::table.find(&seat.id))
        .set(room_participants::role.eq(role.as_str()))
        .execute(conn)
        .map(|_| ())
}

/// The host makes (`true`) or unmakes a co-host; returns the target's seat, and whether it
/// changed.
pub fn set_cohost(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    target_id: UserId,
    cohost: bool,
) -> Result<(ParticipantRow, bool), RoomError> {
    write_transaction(conn, |conn| {
        acting_seat(conn, room_id, actor_id, Needs::Host)?;
        let mut seat = other_seat(conn, room_id, actor_id, target_id)?;
        let role = if cohost {
            Role::Cohost
        } else {
            Role::Participant
        };
        if seat.role() == role {
            return Ok((seat, false));
        }
        set_role(conn, &mut seat, role)?;
        let action = if cohost {
            AuditAction::MakeCohost
        } else {
            AuditAction::RemoveCohost
        };
        audit::record(
            conn,
            &AuditEntry::new(Some(actor_id), action)
                .target(target_id)
                .room(room_id),
        )?;
        Ok((seat, true))
    })
}

#[derive(Debug)]
pub struct HostTransferred {
    pub room: RoomRow,
    /// Now a co-host.
    pub old_host: ParticipantRow,
    pub new_host: ParticipantRow,
}

/// The host hands the room to someone seated; the old host stays as a co-host.
pub fn transfer_host(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    target_id: UserId,
) -> Result<HostTransferred, RoomError> {
    write_transaction(conn, |conn| {
        let (mut room, mut old_host) = acting_seat(conn, room_id, actor_id, Needs::Host)?;
        let mut new_host = other_seat(conn, room_id, actor_id, target_id)?;
        set_role(conn, &mut old_host, Role::Cohost)?;
        set_role(conn, &mut new_host, Role::Host)?;
        room.host_id = new_host.user_id.clone();
        room.updated_at = db::now();
        diesel::update(rooms::table.find(&room.id))
            .set((
                rooms::host_id.eq(&room.host_id),
                rooms::updated_at.eq(room.updated_at),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            &AuditEntry::new(Some(actor_id), AuditAction::TransferHost)
                .target(target_id)
                .room(room_id),
        )?;
        Ok(HostTransferred {
            room,
            old_host,
            new_host,
        })
    })
}

/// What a hard mute (or lifting it) changed on the target's seat.
#[derive(Debug)]
pub struct HardMuted {
    pub seat: ParticipantRow,
    /// The microphone went from on to muted.
    pub mic_muted: bool,
    /// The camera went from on to off.
    pub camera_off: bool,
    /// A lock was set or lifted.
    pub changed: bool,
}

/// A host or co-host locks (`Some(true)`: muted and locked) or unlocks (`Some(false)`: the
/// lock lifted, the person stays muted) someone's microphone and/or camera.
pub fn hard_mute(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    target_id: UserId,
    mic: Option<bool>,
    camera: Option<bool>,
) -> Result<HardMuted, RoomError> {
    if mic.is_none() && camera.is_none() {
        return Err(RoomError::Invalid {
            field: "mic",
            message: "give mic, camera or both",
        });
    }
    write_transaction(conn, |conn| {
        let (_, actor) = acting_seat(conn, room_id, actor_id, Needs::Moderator)?;
        let mut seat = other_seat(conn, room_id, actor_id, target_id)?;
        may_act_on(&actor, &seat)?;
        let before = seat.clone();
        if let Some(lock) = mic {
            seat.mic_locked = lock;
            seat.is_muted |= lock;
        }
        if let Some(lock) = camera {
            seat.camera_locked = lock;
            seat.is_video_off |= lock;
        }
        let changed = seat.mic_locked != before.mic_locked
            || seat.camera_locked != before.camera_locked
            || seat.is_muted != before.is_muted
            || seat.is_video_off != before.is_video_off;
        if changed {
            diesel::update(room_participants::table.find(&seat.id))
                .set((
                    room_participants::mic_locked.eq(seat.mic_locked),
                    room_participants::camera_locked.eq(seat.camera_locked),
                    room_participants::is_muted.eq(seat.is_muted),
                    room_participants::is_video_off.eq(seat.is_video_off),
                ))
                .execute(conn)?;
            let locking = mic == Some(true) || camera == Some(true);
            let action = if locking {
                AuditAction::HardMute
            } else {
                AuditAction::LiftMute
            };
            audit::record(
                conn,
                &AuditEntry::new(Some(actor_id), action)
                    .target(target_id)
                    .room(room_id)
                    .details(json!({ "mic": mic, "camera": camera })),
            )?;
        }
        Ok(HardMuted {
            mic_muted: seat.is_muted && !before.is_muted,
            camera_off: seat.is_video_off && !before.is_video_off,
            seat,
            changed,
        })
    })
}

/// Mutes every microphone in the room but the actor's (without locking them); returns whose
/// microphone went from on to muted.
pub fn mute_all(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
) -> Result<Vec<UserId>, RoomError> {
    write_transaction(conn, |conn| {
        acting_seat(conn, room_id, actor_id, Needs::Moderator)?;
        let muted = mute_every_mic(conn, room_id, Some(actor_id))?;
        audit::record(
            conn,
            &AuditEntry::new(Some(actor_id), AuditAction::MuteAll)
                .room(room_id)
                .details(json!({ "muted": muted.len() })),
        )?;
        Ok(muted)
    })
}

/// Mutes every seated microphone (but `except`'s); returns whose changed.
fn mute_every_mic(
    conn: &mut DbConnection,
    room_id: RoomId,
    except: Option<UserId>,
) -> QueryResult<Vec<UserId>> {
    let except = except.map(|u| u.to_string()).unwrap_or_default();
    let unmuted: Vec<(String, String)> = room_participants::table
        .filter(room_participants::room_id.eq(room_id.to_string()))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .filter(room_participants::is_muted.eq(false))
        .filter(room_participants::user_id.ne(except))
        .select((room_participants::id, room_participants::user_id))
        .load(conn)?;
    let seats: Vec<&String> = unmuted.iter().map(|(seat, _)| seat).collect();
    diesel::update(room_participants::table.filter(room_participants::id.eq_any(seats)))
        .set(room_participants::is_muted.eq(true))
        .execute(conn)?;
    Ok(unmuted
        .iter()
        .map(|(_, user)| UserId::from_stored(user))
        .collect())
}

/// Locks the room with a fresh key (`Some`), or unlocks it (`None`); returns the room.
pub fn set_lock(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    key: Option<String>,
) -> Result<RoomRow, RoomError> {
    write_transaction(conn, |conn| {
        let (mut room, _) = acting_seat(conn, room_id, actor_id, Needs::Moderator)?;
        let action = match key {
            Some(_) => AuditAction::LockRoom,
            None => AuditAction::UnlockRoom,
        };
        room.lock_key = key;
        room.updated_at = db::now();
        diesel::update(rooms::table.find(&room.id))
            .set((
                rooms::lock_key.eq(&room.lock_key),
                rooms::updated_at.eq(room.updated_at),
            ))
            .execute(conn)?;
        audit::record(conn, &AuditEntry::new(Some(actor_id), action).room(room_id))?;
        Ok(room)
    })
}

/// The room's key, for a host or co-host (`None`: not locked).
pub fn room_key(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
) -> Result<Option<String>, RoomError> {
    write_transaction(conn, |conn| {
        let (room, _) = acting_seat(conn, room_id, actor_id, Needs::Moderator)?;
        Ok(room.lock_key)
    })
}

/// The live settings a host or co-host may change; `None` leaves one as it is.
#[derive(Debug, Default)]
pub struct RoomUpdate {
    pub title: Option<RoomTitle>,
    /// `Some(None)`: no topic any more.
    pub topic: Option<Option<Topic>>,
    pub language: Option<LanguageCode>,
    /// `Some(None)`: no second language any more.
    pub second_language: Option<Option<LanguageCode>>,
    pub level: Option<Level>,
    pub seats: Option<SeatLimit>,
    pub no_mic: Option<bool>,
    pub mic_required: Option<bool>,
    pub slow_mode_secs: Option<i32>,
}

#[derive(Debug)]
pub struct Updated {
    pub room: RoomRow,
    /// Microphones muted because the room became `noMic`.
    pub muted: Vec<UserId>,
}

/// Applies the settings; the seat limit never goes below the people seated.
pub fn update(
    conn: &mut DbConnection,
    room_id: RoomId,
    actor_id: UserId,
    change: RoomUpdate,
) -> Result<Updated, RoomError> {
    if let Some(secs) = change.slow_mode_secs {
        if !(0..=MAX_SLOW_MODE_SECS).contains(&secs) {
            return Err(RoomError::Invalid {
                field: "slowModeSecs",
                message: "must be between 0 and 300",
            });
        }
    }
    write_transaction(conn, |conn| {
        let (mut room, _) = acting_seat(conn, room_id, actor_id, Needs::Moderator)?;
        let slow_before = room.slow_mode_secs;
        if let Some(seats) = change.seats {
            if seats.get() < room.participant_count {
                return Err(RoomError::Invalid {
                    field: "maxParticipants",
                    message: "cannot be below the number of people seated",
                });
            }
            room.max_participants = seats.get();
        }
        if let Some(title) = &change.title {
            room.title = title.as_str().to_owned();
        }
        if let Some(topic) = &change.topic {
            room.topic = topic.as_ref().map(|t| t.as_str().to_owned());
        }
        (room.topic_key, room.search_text) = search_keys(&room.title, room.topic.as_deref());
        if let Some(language) = &change.language {
            room.language = language.as_str().to_owned();
        }
        if let Some(second) = &change.second_language {
            room.second_language = second.as_ref().map(|l| l.as_str().to_owned());
        }
        if let Some(level) = change.level {
            room.level = level.as_str().to_owned();
        }
        let mic_off_now = change.no_mic == Some(true) && !room.no_mic;
        if let Some(no_mic) = change.no_mic {
            room.no_mic = no_mic;
        }
        if let Some(required) = change.mic_required {
            room.mic_required = required;
        }
        if let Some(secs) = change.slow_mode_secs {
            room.slow_mode_secs = secs;
        }
        room.updated_at = db::now();
        diesel::update(rooms::table.find(&room.id))
            .set((
                rooms::title.eq(&room.title),
                rooms::topic.eq(&room.topic),
                rooms::topic_key.eq(&room.topic_key),
                rooms::search_text.eq(&room.search_text),
                rooms::language.eq(&room.language),
                rooms::second_language.eq(&room.second_language),
                rooms::level.eq(&room.level),
                rooms::max_participants.eq(room.max_participants),
                rooms::no_mic.eq(room.no_mic),
                rooms::mic_required.eq(room.mic_required),
                rooms::slow_mode_secs.eq(room.slow_mode_secs),
                rooms::updated_at.eq(room.updated_at),
            ))
            .execute(conn)?;
        let muted = if mic_off_now {
            mute_every_mic(conn, room_id, None)?
        } else {
            Vec::new()
        };
        audit::record(
            conn,
            &AuditEntry::new(Some(actor_id), AuditAction::UpdateRoom)
                .room(room_id)
                .details(json!({
                    "title": room.title,
                    "topic": room.topic,
                    "language": room.language,
                    "secondLanguage": room.second_language,
                    "level": room.level,
                    "maxParticipants": room.max_participants,
                    "noMic": room.no_mic,
                    "micRequired": room.mic_required,
                    "slowModeSecs": room.slow_mode_secs,
                })),
        )?;
        if room.slow_mode_secs != slow_before {
            audit::record(
                conn,
                &AuditEntry::new(Some(actor_id), AuditAction::SlowMode)
                    .room(room_id)
                    .details(json!({ "slowModeSecs": room.slow_mode_secs })),
            )?;
        }
        Ok(Updated { room, muted })
    })
}

/// Which of the seat's media a new SFU session must start muted: (microphone, camera).
pub fn forced_mutes(
    conn: &mut DbConnection,
    room_id: RoomId,
    user_id: UserId,
) -> Result<(bool, bool), RoomError> {
    let (room, seat) = super::rules::seat_in_live_room(conn, room_id, user_id)?;
    Ok((seat.mic_locked || room.no_mic, seat.camera_locked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keys_are_sixteen_url_safe_characters() {
        let key = new_room_key();
        assert_eq!(key.len(), 16);
        assert!(key.bytes().all(|b| KEY_ALPHABET.contains(&b)));
        assert_ne!(key, new_room_key());
    }
}
