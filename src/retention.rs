//! What strangers leave behind does not stay forever (`[retention]`): ended rooms go with their
//! seats and chat some days after they ended, and guest accounts some days after they were
//! made, once their token has expired and nothing names them any more. Checked every hour;
//! in a cluster every replica runs it, and deleting what is already gone is harmless.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionSettings;
use crate::db::schema::{room_participants, rooms, users};
use crate::db::{self, DbConnection, DbError, DbPool, write_transaction};
use crate::rooms::domain::RoomStatus;

const EVERY: Duration = Duration::from_secs(3600);

/// What one pass deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub rooms: usize,
    pub guests: usize,
}

fn days_before(now: NaiveDateTime, days: u32) -> NaiveDateTime {
    now - chrono::Duration::days(i64::from(days))
}

/// One pass at `now`.
pub fn purge(
    conn: &mut DbConnection,
    settings: &RetentionSettings,
    token_ttl: Duration,
    now: NaiveDateTime,
) -> Result<Purged, DbError> {
    let mut purged = Purged::default();
    if settings.ended_room_days > 0 {
        let before = days_before(now, settings.ended_room_days);
        // Seats and chat go with the room (ON DELETE CASCADE).
        purged.rooms = write_transaction(conn, |conn| {
            diesel::delete(
                rooms::table
                    .filter(rooms::status.eq(RoomStatus::Ended.as_str()))
                    .filter(rooms::ended_at.lt(before)),
            )
            .execute(conn)
            .map_err(DbError::from)
        })?;
    }
    if settings.guest_days > 0 {
        let ttl_days = token_ttl.as_secs().div_ceil(86_400);
        let days = u32::try_from(ttl_days)
            .unwrap_or(u32::MAX)
            .max(settings.guest_days);
        let before = days_before(now, days);
        purged.guests = write_transaction(conn, |conn| {
            let hosts = rooms::table.select(rooms::host_id);
            let creators = rooms::table.select(rooms::created_by);
            let seated = room_participants::table
                .filter(room_participants::left_at.is_null())
                .select(room_participants::user_id);
            diesel::delete(
                users::table
                    .filter(users::is_guest.eq(true))
                    .filter(users::created_at.lt(before))
                    .filter(users::id.ne_all(hosts))
                    .filter(users::id.ne_all(creators))
                    .filter(users::id.ne_all(seated)),
            )
            .execute(conn)
            .map_err(DbError::from)
        })?;
    }
    Ok(purged)
}

/// Runs `purge` every hour until `shutdown`.
pub async fn run(
    pool: DbPool,
    settings: RetentionSettings,
    token_ttl: Duration,
    shutdown: CancellationToken,
) {
    if settings.ended_room_days == 0 && settings.guest_days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let settings = settings.clone();
        match db::run(&pool, move |conn| {
            purge(conn, &settings, token_ttl, db::now())
        })
        .await
        {
            Ok(purged) if purged != Purged::default() => {
                tracing::info!(
                    rooms = purged.rooms,
                    guests = purged.guests,
                    "retention: purged"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: purge failed"),
        }
    }
}
