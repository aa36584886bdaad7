//! Reads: one room, its seats, the lobby page, and turning rows into views.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::domain::{Level, RoomStatus};
use super::model::{ParticipantRow, ParticipantView, RoomDetail, RoomRow, RoomView};
use crate::auth::{User, UserPublic};
use crate::db::cursor::{PageCursor, RankedCursor, split_page};
use crate::db::schema::{room_participants, rooms, users};
use crate::db::{DbConnection, DbError};
use crate::ids::{RoomId, UserId};

pub fn find_room(conn: &mut DbConnection, room_id: RoomId) -> QueryResult<Option<RoomRow>> {
    rooms::table
        .find(room_id.to_string())
        .select(RoomRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_seat(
    conn: &mut DbConnection,
    room_id: RoomId,
    user_id: UserId,
) -> QueryResult<Option<ParticipantRow>> {
    room_participants::table
        .filter(room_participants::room_id.eq(room_id.to_string()))
        .filter(room_participants::user_id.eq(user_id.to_string()))
        .select(ParticipantRow::as_select())
        .first(conn)
        .optional()
}

/// One seat as clients see it, with its user.
pub fn seat_view(conn: &mut DbConnection, seat: &ParticipantRow) -> QueryResult<ParticipantView> {
    let user: User = users::table
        .find(&seat.user_id)
        .select(User::as_select())
        .first(conn)?;
    Ok(ParticipantView::new(seat, &user.public()))
}

/// Seats currently taken in the rooms, longest-present first, with their users.
fn active_seats(
    conn: &mut DbConnection,
    room_ids: &[&str],
) -> QueryResult<Vec<(ParticipantRow, User)>> {
    if room_ids.is_empty() {
        return Ok(Vec::new());
    }
    room_participants::table
        .inner_join(users::table)
        .filter(room_participants::room_id.eq_any(room_ids))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .order((
            room_participants::joined_at.asc(),
            room_participants::id.asc(),
        ))
        .select((ParticipantRow::as_select(), User::as_select()))
        .load(conn)
}

fn users_by_id(conn: &mut DbConnection, ids: &[&str]) -> QueryResult<HashMap<String, UserPublic>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .load(conn)?
        .into_iter()
        .map(|u| (u.id.clone(), u.public()))
        .collect())
}

fn room_view(row: &RoomRow, host: UserPublic, members: Vec<UserPublic>) -> RoomView {
    RoomView {
        id: row.room_id(),
        title: row.title.clone(),
        topic: row.topic.clone(),
        language: row.language.clone(),
        level: Level::from_stored(&row.level),
        max_participants: row.max_participants,
        participant_count: row.participant_count,
        status: RoomStatus::parse(&row.status).unwrap_or(RoomStatus::Ended),
        host,
        members,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
        ended_at: row.ended_at.map(|t| t.and_utc()),
        is_locked: row.lock_key.is_some(),
        second_language: row.second_language.clone(),
        mic_required: row.mic_required,
        no_mic: row.no_mic,
        slow_mode_secs: row.slow_mode_secs,
    }
}

/// Rooms with their hosts and members, in the order given: two queries for the whole page.
pub fn details(conn: &mut DbConnection, rows: &[RoomRow]) -> QueryResult<Vec<RoomDetail>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let host_ids: Vec<&str> = rows.iter().map(|r| r.host_id.as_str()).collect();
    let hosts = users_by_id(conn, &host_ids)?;
    let mut seats: HashMap<String, Vec<(ParticipantRow, User)>> = HashMap::new();
    for (seat, user) in active_seats(conn, &ids)? {
        seats
            .entry(seat.room_id.clone())
            .or_default()
            .push((seat, user));
    }
    Ok(rows
        .iter()
        .map(|row| {
            let room_seats = seats.remove(&row.id).unwrap_or_default();
            let host = hosts
                .get(&row.host_id)
                .cloned()
                .unwrap_or_else(|| UserPublic {
                    id: UserId::from_stored(&row.host_id),
                    username: None,
                    display_name: String::new(),
                    is_guest: true,
                });
            let members = room_seats.iter().map(|(_, u)| u.public()).collect();
            let participants = room_seats
                .iter()
                .map(|(seat, user)| ParticipantView::new(seat, &user.public()))
                .collect();
            RoomDetail {
                room: room_view(row, host, members),
                participants,
            }
        })
        .collect())
}

pub fn detail(conn: &mut DbConnection, row: &RoomRow) -> QueryResult<RoomDetail> {
    details(conn, std::slice::from_ref(row))?
        .pop()
        .ok_or(diesel::result::Error::NotFound)
}

/// How many rooms are live, and how many seats are taken in them (for the metrics).
pub fn live_counts(conn: &mut DbConnection) -> QueryResult<(i64, i64)> {
    let live_rooms: i64 = rooms::table
        .filter(rooms::status.eq(RoomStatus::Live.as_str()))
        .count()
        .get_result(conn)?;
    let seats: i64 = room_participants::table
        .inner_join(rooms::table)
        .filter(rooms::status.eq(RoomStatus::Live.as_str()))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .count()
        .get_result(conn)?;
    Ok((live_rooms, seats))
}

/// (room, user) of every seat held in a live room.
pub fn active_seats_of_live_rooms(
    conn: &mut DbConnection,
) -> Result<Vec<(RoomId, UserId)>, DbError> {
    let rows: Vec<(String, String)> = room_participants::table
        .inner_join(rooms::table)
        .filter(rooms::status.eq(RoomStatus::Live.as_str()))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .select((room_participants::room_id, room_participants::user_id))
        .load(conn)?;
    Ok(rows
        .iter()
        .map(|(room, user)| (RoomId::from_stored(room), UserId::from_stored(user)))
        .collect())
}

/// Whether the two users hold seats in one live room (who a user may reach through the TURN
/// relay in mesh mode).
pub fn share_live_room(conn: &mut DbConnection, a: UserId, b: UserId) -> QueryResult<bool> {
    let rooms_of_a: Vec<String> = room_participants::table
        .inner_join(rooms::table)
        .filter(rooms::status.eq(RoomStatus::Live.as_str()))
        .filter(room_participants::user_id.eq(a.to_string()))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .select(room_participants::room_id)
        .load(conn)?;
    if rooms_of_a.is_empty() {
        return Ok(false);
    }
    let seats: i64 = room_participants::table
        .filter(room_participants::room_id.eq_any(&rooms_of_a))
        .filter(room_participants::user_id.eq(b.to_string()))
        .filter(room_participants::left_at.is_null())
        .filter(room_participants::is_kicked.eq(false))
        .count()
        .get_result(conn)?;
    Ok(seats > 0)
}

/// The lobby's filters, already parsed.
#[derive(Debug, Clone, Default)]
pub struct RoomFilter {
    /// None = every status.
    pub status: Option<RoomStatus>,
    pub language: Option<String>,
    /// Folded with `fold_for_search`.
    pub topic_key: Option<String>,
    pub level: Option<Level>,
    /// Folded with `fold_for_search`.
    pub text: Option<String>,
    pub has_seat: bool,
    /// `Some`: only rooms that do (or do not) ask people to use their microphone.
    pub mic_required: Option<bool>,
    pub sort: LobbySort,
}

/// The lobby's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LobbySort {
    /// Newest first.
    #[default]
    Newest,
    /// Most people first, then newest.
    Popular,
}

/// Where the next lobby page starts; its shape depends on the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LobbyCursor {
    Newest(PageCursor),
    Popular(RankedCursor),
}

impl LobbyCursor {
    pub fn encode(&self) -> String {
        match self {
            LobbyCursor::Newest(c) => c.encode(),
            LobbyCursor::Popular(c) => c.encode(),
        }
    }

    /// A cursor of this order (one of the other order is not one).
    pub fn decode(sort: LobbySort, raw: &str) -> Option<Self> {
        match sort {
            LobbySort::Newest => PageCursor::decode(raw).map(LobbyCursor::Newest),
            LobbySort::Popular => RankedCursor::decode(raw).map(LobbyCursor::Popular),
        }
    }

    /// The cursor of a page that ends at this room.
    pub fn at(sort: LobbySort, created_at: NaiveDateTime, id: &str, participants: i32) -> Self {
        let position = PageCursor {
            at: created_at,
            id: id.to_owned(),
        };
        match sort {
            LobbySort::Newest => LobbyCursor::Newest(position),
            LobbySort::Popular => LobbyCursor::Popular(RankedCursor {
                rank: participants,
                position,
            }),
        }
    }

    fn of(sort: LobbySort, row: &RoomRow) -> Self {
        Self::at(sort, row.created_at, &row.id, row.participant_count)
    }
}

/// Escapes LIKE wildcards so user text matches literally.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// One page of rooms in the filter's order, and the cursor of the next page if there is one.
pub fn list(
    conn: &mut DbConnection,
    filter: &RoomFilter,
    limit: i64,
    after: Option<&LobbyCursor>,
) -> Result<(Vec<RoomView>, Option<LobbyCursor>), DbError> {
    let mut query = rooms::table.select(RoomRow::as_select()).into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(rooms::status.eq(status.as_str()));
    }
    if let Some(language) = &filter.language {
        query = query.filter(
            rooms::language
                .eq(language.clone())
                .or(rooms::second_language.eq(language.clone())),
        );
    }
    if let Some(topic_key) = &filter.topic_key {
        query = query.filter(rooms::topic_key.eq(topic_key.clone()));
    }
    if let Some(level) = filter.level {
        query = query.filter(rooms::level.eq(level.as_str()));
    }
    if let Some(text) = &filter.text {
        query = query.filter(rooms::search_text.like(like_pattern(text)).escape('\\'));
    }
    if filter.has_seat {
        query = query.filter(rooms::participant_count.lt(rooms::max_participants));
    }
    if let Some(required) = filter.mic_required {
        query = query.filter(rooms::mic_required.eq(required));
    }
    let older = |c: &PageCursor| {
        rooms::created_at
            .lt(c.at)
            .or(rooms::created_at.eq(c.at).and(rooms::id.lt(c.id.clone())))
    };
    match after {
        None => {}
        Some(LobbyCursor::Newest(c)) => query = query.filter(older(c)),
        Some(LobbyCursor::Popular(c)) => {
            query = query.filter(
                rooms::participant_count
                    .lt(c.rank)
                    .or(rooms::participant_count.eq(c.rank).and(older(&c.position))),
            );
        }
    }
    query = match filter.sort {
        LobbySort::Newest => query.order((rooms::created_at.desc(), rooms::id.desc())),
        LobbySort::Popular => query.order((
            rooms::participant_count.desc(),
            rooms::created_at.desc(),
            rooms::id.desc(),
        )),
    };
    let rows: Vec<RoomRow> = query.limit(limit + 1).load(conn)?;
    let (rows, next) = split_page(rows, limit, |r| LobbyCursor::of(filter.sort, r));
    let views = details(conn, &rows)?.into_iter().map(|d| d.room).collect();
    Ok((views, next))
}

/// Every live room, newest first, read in pages of `MAX_PAGE` within one connection's turn
/// (the lobby's load and the resynchronisation after an outage).
pub fn all_live(conn: &mut DbConnection) -> Result<Vec<RoomView>, DbError> {
    let filter = RoomFilter {
        status: Some(RoomStatus::Live),
        ..Default::default()
    };
    let mut rooms = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = list(conn, &filter, crate::http::MAX_PAGE, cursor.as_ref())?;
        rooms.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(rooms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
