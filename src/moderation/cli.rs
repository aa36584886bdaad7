//! `talkconnect admin …`: the admin page's actions from a shell, on the database directly
//! (the configuration loads as for `serve`). It publishes nothing: running servers learn of
//! a ban when their ban view re-reads the table (every few seconds, `bans::REFRESH_SECS`);
//! audit lines have no actor.

use std::fmt::Write as _;

use clap::Subcommand;

use super::{admin, audit, bans, reports};
use crate::config::Settings;
use crate::db::{self, DbConnection};
use crate::ids::RoomId;
use crate::moderation::bans::{Admins, NewBan};
use crate::rooms::{RoomError, rules};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List the live rooms, their people and open reports.
    Rooms,
    /// End a live room (its sockets learn of it when they next act; prefer the admin page
    /// for a room people are in).
    End {
        /// The room's id.
        room: RoomId,
    },
    /// Ban a user (an id or a username); a guest's network too.
    Ban {
        user: String,
        /// How long: 90s, 30m, 12h, 7d (none: for good).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<i64>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a user's ban.
    Unban { user: String },
    /// The newest open reports.
    Reports,
    /// The newest audit lines.
    Audit,
}

/// `90s`, `30m`, `12h`, `7d` or a number of seconds.
pub fn parse_duration(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    let (number, unit) = match raw.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&raw[..at], c),
        _ => (raw, 's'),
    };
    let n: i64 = number
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{raw:?}: expected a duration such as 90s, 30m, 12h or 7d"))?;
    let unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(format!("{raw:?}: the unit is one of s, m, h, d")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{raw:?}: too long"))
}

/// Runs one command; answers what to print, or why it failed.
pub fn run(settings: &Settings, command: AdminCommand) -> Result<String, String> {
    let url = settings.database_url().map_err(|e| e.to_string())?;
    let pool = db::connect(&url, &settings.database).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    let admins = Admins::new(&settings.moderation.admins);
    execute(&mut conn, &admins, command)
}

fn execute(
    conn: &mut DbConnection,
    admins: &Admins,
    command: AdminCommand,
) -> Result<String, String> {
    let mut out = String::new();
    match command {
        AdminCommand::Rooms => {
            for room in admin::live_rooms(conn).map_err(|e| e.to_string())? {
                let view = &room.room.room;
                let _ = writeln!(
                    out,
                    "{}  {:?}  {} people  {} open reports",
                    view.id,
                    view.title,
                    room.room.participants.len(),
                    room.open_reports
                );
                for p in &room.room.participants {
                    let _ = writeln!(out, "    {}  {}  {:?}", p.user_id, p.display_name, p.role);
                }
            }
        }
        AdminCommand::End { room } => match rules::end_by_admin(conn, room, None) {
            Ok(_) => {
                let _ = writeln!(out, "room {room} ended");
            }
            Err(RoomError::NotFound) => return Err(format!("no room {room}")),
            Err(RoomError::Ended) => return Err(format!("room {room} has already ended")),
            Err(e) => return Err(e.to_string()),
        },
        AdminCommand::Ban {
            user,
            duration,
            reason,
        } => {
            let target = find(conn, &user)?;
            let reason = match reason {
                Some(raw) => admin::REASON
                    .clean(&raw)
                    .map_err(|e| format!("--reason {e}"))?,
                None => String::new(),
            };
            let new = NewBan {
                actor: None,
                target,
                reason: Some(reason).filter(|r| !r.is_empty()),
                duration_secs: duration,
            };
            let ban = bans::ban(conn, admins, new).map_err(|e| e.to_string())?;
            let until = ban.until.map_or("for good".to_owned(), |u| {
                format!("until {}", u.to_rfc3339())
            });
            let _ = writeln!(out, "user {} banned {until}", ban.user_id);
        }
        AdminCommand::Unban { user } => {
            let target = find(conn, &user)?;
            bans::unban(conn, None, target).map_err(|e| e.to_string())?;
            let _ = writeln!(out, "user {target} unbanned");
        }
        AdminCommand::Reports => {
            let (reports, _) = reports::list(conn, reports::ReportFilter::Open, 50, None)
                .map_err(|e| e.to_string())?;
            for report in reports {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).unwrap_or_default()
                );
            }
        }
        AdminCommand::Audit => {
            let (entries, _) = audit::list(conn, 50, None).map_err(|e| e.to_string())?;
            for entry in entries {
                let _ = writeln!(out, "{}", serde_json::to_string(&entry).unwrap_or_default());
            }
        }
    }
    Ok(out)
}

fn find(conn: &mut DbConnection, who: &str) -> Result<crate::ids::UserId, String> {
    bans::find_user(conn, who)
        .map_err(|e| e.to_string())?
        .map(|u| u.user_id())
        .ok_or_else(|| format!("no user {who:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("0d").is_err());
        assert!(parse_duration("7w").is_err());
        assert!(parse_duration("d").is_err());
    }
}
