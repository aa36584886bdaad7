//! Instance bans (docs/MODERATION.md "The instance: admins and bans"): the rules that write
//! them (REST and `talkconnect admin`), and `Bans`, the in-memory view every request and
//! socket is checked against without a query.
//!
//! The view is kept true three ways: loaded at start, updated at once from the Bus events
//! `userBanned` / `userUnbanned` (every replica hears them), and re-read from the `bans`
//! table every few seconds, which also brings in bans written by the command line (it
//! publishes nothing) and lets expired bans go. An expired ban stops applying by itself:
//! every check compares its end with the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::json;

use super::audit::{self, AuditAction, AuditEntry};
use crate::auth::{User, UserPublic};
use crate::db::schema::{bans, users};
use crate::db::{self, DbConnection, DbError, DbPool, write_transaction};
use crate::events::DomainEvent;
use crate::ids::UserId;

/// How often the view re-reads the table.
pub const REFRESH_SECS: u64 = 3;

/// Why a user may not come in, and until when (`None`: for good).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BanNotice {
    pub reason: Option<String>,
    #[serde(with = "crate::timestamp::option")]
    pub until: Option<DateTime<Utc>>,
}

impl BanNotice {
    fn applies(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| until > now)
    }

    /// The message a refused request carries.
    pub fn message(&self) -> String {
        let until = match self.until {
            Some(until) => format!("until {}", until.to_rfc3339()),
            None => "for good".to_owned(),
        };
        match &self.reason {
            Some(reason) => format!("This account is banned {until}: {reason}"),
            None => format!("This account is banned {until}"),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = bans)]
pub struct BanRow {
    pub id: String,
    pub user_id: Option<String>,
    pub ip_hash: Option<String>,
    pub reason: Option<String>,
    pub banned_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub lifted_at: Option<NaiveDateTime>,
    pub lifted_by: Option<String>,
}

/// A ban as admins see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BanView {
    pub id: String,
    pub user_id: UserId,
    /// The account, when it still exists.
    pub user: Option<UserPublic>,
    /// The ban covers the network the (guest) account was made from too.
    pub ip_banned: bool,
    pub reason: Option<String>,
    pub banned_by: Option<UserId>,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp::option")]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("no such user")]
    UserNotFound,
    #[error("an admin cannot be banned")]
    TargetIsAdmin,
    #[error("you cannot ban yourself")]
    SelfBan,
    #[error("the user is not banned")]
    NotBanned,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for BanError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Who may administer the instance, from `[moderation] admins`.
#[derive(Debug, Clone, Default)]
pub struct Admins(Arc<Vec<String>>);

impl Admins {
    pub fn new(names: &[String]) -> Self {
        Self(Arc::new(
            names.iter().map(|n| n.trim().to_lowercase()).collect(),
        ))
    }

    /// An id always counts; a username only for a registered account (guests have none).
    pub fn contains(&self, user: &User) -> bool {
        let id = user.id.to_lowercase();
        self.0.iter().any(|name| {
            *name == id || (!user.is_guest && user.username.as_deref() == Some(name.as_str()))
        })
    }
}

/// The live view of bans, shared by every request and socket of this process.
#[derive(Clone)]
pub struct Bans {
    pool: DbPool,
    admins: Admins,
    ip_key: Arc<ring::hmac::Key>,
    active: Arc<RwLock<HashMap<UserId, BanNotice>>>,
}

impl Bans {
    pub fn new(pool: DbPool, admins: Admins, ip_secret: &[u8]) -> Self {
        Self {
            pool,
            admins,
            ip_key: Arc::new(ip_key(ip_secret)),
            active: Arc::default(),
        }
    }

    pub fn admins(&self) -> &Admins {
        &self.admins
    }

    /// The ban that stops this user now, if any.
    pub fn check(&self, user: UserId) -> Option<BanNotice> {
        self.active
            .read()
            .get(&user)
            .filter(|ban| ban.applies(Utc::now()))
            .cloned()
    }

    /// The keyed hash of an address (IPv6: its /64).
    pub fn ip_hash(&self, ip: IpAddr) -> String {
        ip_hash(&self.ip_key, ip)
    }

    /// Is a guest from this address hash refused? (One indexed query; guests are made rarely.)
    pub async fn ip_banned(&self, hash: String) -> Result<bool, DbError> {
        db::run(&self.pool, move |conn| {
            let now = db::now();
            let n: i64 = bans::table
                .filter(bans::lifted_at.is_null())
                .filter(bans::ip_hash.eq(hash))
                .filter(bans::expires_at.is_null().or(bans::expires_at.gt(now)))
                .count()
                .get_result(conn)?;
            Ok(n > 0)
        })
        .await
    }

    /// Re-reads the table; answers who is banned now that was not before (their sockets
    /// on this node are to be told and closed).
    pub async fn refresh(&self) -> Result<Vec<(UserId, BanNotice)>, DbError> {
        let rows = db::run(&self.pool, |conn| {
            let now = db::now();
            Ok::<_, DbError>(
                bans::table
                    .filter(bans::lifted_at.is_null())
                    .filter(bans::user_id.is_not_null())
                    .filter(bans::expires_at.is_null().or(bans::expires_at.gt(now)))
                    .select(BanRow::as_select())
                    .load(conn)?,
            )
        })
        .await?;
        let fresh: HashMap<UserId, BanNotice> = rows
            .into_iter()
            .filter_map(|row| Some((UserId::from_stored(row.user_id.as_ref()?), notice(&row))))
            .collect();
        let mut active = self.active.write();
        let new = fresh
            .iter()
            .filter(|(id, _)| !active.contains_key(id))
            .map(|(id, ban)| (*id, ban.clone()))
            .collect();
        *active = fresh;
        Ok(new)
    }

    /// Takes in a ban or unban heard on the Bus; answers true when it is news here.
    pub fn apply(&self, event: &DomainEvent) -> bool {
        match event {
            DomainEvent::UserBanned {
                user_id,
                reason,
                until,
            } => {
                let ban = BanNotice {
                    reason: reason.clone(),
                    until: *until,
                };
                self.active.write().insert(*user_id, ban).is_none()
            }
            DomainEvent::UserUnbanned { user_id } => self.active.write().remove(user_id).is_some(),
            _ => false,
        }
    }
}

fn ip_key(secret: &[u8]) -> ring::hmac::Key {
    // A key of its own, even when derived from the JWT secret.
    let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"talkconnect ip_hash");
    let derived = ring::hmac::sign(&derive, secret);
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
}

fn ip_hash(key: &ring::hmac::Key, ip: IpAddr) -> String {
    let bytes = match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    };
    let tag = ring::hmac::sign(key, &bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
}

fn notice(row: &BanRow) -> BanNotice {
    BanNotice {
        reason: row.reason.clone(),
        until: row.expires_at.map(|t| t.and_utc()),
    }
}

/// The user a command-line or REST argument names: an id, or a username.
pub fn find_user(conn: &mut DbConnection, who: &str) -> Result<Option<User>, DbError> {
    if let Ok(id) = who.parse::<UserId>() {
        return crate::auth::users::find(conn, id);
    }
    Ok(users::table
        .filter(users::username.eq(who.trim().to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// What a ban needs, already checked for shape.
pub struct NewBan {
    pub actor: Option<UserId>,
    pub target: UserId,
    pub reason: Option<String>,
    pub duration_secs: Option<i64>,
}

/// Bans a user (and, for a guest, the network it came from); an earlier ban of theirs is
/// replaced. Refused for admins and for oneself.
pub fn ban(conn: &mut DbConnection, admins: &Admins, new: NewBan) -> Result<BanView, BanError> {
    write_transaction(conn, |conn| {
        let user = crate::auth::users::find(conn, new.target)?.ok_or(BanError::UserNotFound)?;
        if new.actor == Some(new.target) {
            return Err(BanError::SelfBan);
        }
        if admins.contains(&user) {
            return Err(BanError::TargetIsAdmin);
        }
        let now = db::now();
        lift(conn, new.target, new.actor, now)?;
        let row = BanRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: Some(user.id.clone()),
            // Accounts are banned by id; only a guest's network is (docs/MODERATION.md).
            ip_hash: user.ip_hash.clone().filter(|_| user.is_guest),
            reason: new.reason.clone(),
            banned_by: new.actor.map(|a| a.to_string()),
            created_at: now,
            expires_at: new
                .duration_secs
                .map(|s| now + chrono::Duration::seconds(s)),
            lifted_at: None,
            lifted_by: None,
        };
        diesel::insert_into(bans::table)
            .values(&row)
            .execute(conn)?;
        audit::record(
            conn,
            &AuditEntry::new(new.actor, AuditAction::Ban)
                .target(new.target)
                .details(json!({
                    "reason": row.reason,
                    "until": row.expires_at.map(|t| crate::timestamp::format(&t.and_utc())),
                    "ipBanned": row.ip_hash.is_some(),
                })),
        )?;
        Ok(view(row, Some(user.public())))
    })
}

/// Lifts a user's ban.
pub fn unban(
    conn: &mut DbConnection,
    actor: Option<UserId>,
    target: UserId,
) -> Result<(), BanError> {
    write_transaction(conn, |conn| {
        let lifted = lift(conn, target, actor, db::now())?;
        if lifted == 0 {
            return Err(BanError::NotBanned);
        }
        audit::record(
            conn,
            &AuditEntry::new(actor, AuditAction::Unban).target(target),
        )?;
        Ok(())
    })
}

fn lift(
    conn: &mut DbConnection,
    target: UserId,
    actor: Option<UserId>,
    now: NaiveDateTime,
) -> Result<usize, BanError> {
    Ok(diesel::update(
        bans::table
            .filter(bans::user_id.eq(target.to_string()))
            .filter(bans::lifted_at.is_null())
            .filter(bans::expires_at.is_null().or(bans::expires_at.gt(now))),
    )
    .set((
        bans::lifted_at.eq(Some(now)),
        bans::lifted_by.eq(actor.map(|a| a.to_string())),
    ))
    .execute(conn)?)
}

/// The bans in force, newest first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<BanView>, DbError> {
    let now = db::now();
    let rows: Vec<BanRow> = bans::table
        .filter(bans::lifted_at.is_null())
        .filter(bans::user_id.is_not_null())
        .filter(bans::expires_at.is_null().or(bans::expires_at.gt(now)))
        .order((bans::created_at.desc(), bans::id.desc()))
        .select(BanRow::as_select())
        .load(conn)?;
    let ids: Vec<String> = rows.iter().filter_map(|r| r.user_id.clone()).collect();
    let found: HashMap<String, User> = users::table
        .filter(users::id.eq_any(&ids))
        .select(User::as_select())
        .load(conn)?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let user = row
                .user_id
                .as_ref()
                .and_then(|id| found.get(id))
                .map(User::public);
            view(row, user)
        })
        .collect())
}

fn view(row: BanRow, user: Option<UserPublic>) -> BanView {
    BanView {
        user_id: UserId::from_stored(row.user_id.as_deref().unwrap_or_default()),
        user,
        ip_banned: row.ip_hash.is_some(),
        reason: row.reason,
        banned_by: row.banned_by.as_deref().map(UserId::from_stored),
        created_at: row.created_at.and_utc(),
        until: row.expires_at.map(|t| t.and_utc()),
        id: row.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_network_hashes_as_one_and_keys_differ() {
        let key = ip_key(b"secret");
        let a = ip_hash(&key, "2001:db8:1:2::1".parse().unwrap());
        let b = ip_hash(&key, "2001:db8:1:2:ffff::9".parse().unwrap());
        let c = ip_hash(&key, "2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4 = ip_hash(&key, "192.0.2.1".parse().unwrap());
        let mapped = ip_hash(&key, "::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(v4, mapped);
        assert_ne!(v4, ip_hash(&ip_key(b"other"), "192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn expired_notices_do_not_apply() {
        let now = Utc::now();
        let past = BanNotice {
            reason: None,
            until: Some(now - chrono::Duration::seconds(1)),
        };
        assert!(!past.applies(now));
        assert!(
            BanNotice {
                reason: None,
                until: None
            }
            .applies(now)
        );
    }
}
