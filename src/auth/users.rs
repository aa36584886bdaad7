//! Users (registered and guests): the row, its public face, the names they choose, and the
//! queries accounts need.

use crate::ids::UserId;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::schema::users;
use crate::db::{DbConnection, DbError, is_unique_violation};
use crate::text::{TextError, TextRule};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub is_guest: bool,
    pub created_at: NaiveDateTime,
    /// A keyed hash of the address the account was made from (guest bans, docs/MODERATION.md).
    pub ip_hash: Option<String>,
}

/// What anyone may see of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPublic {
    pub id: UserId,
    pub username: Option<String>,
    pub display_name: String,
    pub is_guest: bool,
}

/// What the user sees of themself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPrivate {
    pub id: UserId,
    pub username: Option<String>,
    pub email: Option<String>,
    pub display_name: String,
    pub is_guest: bool,
    #[serde(with = "crate::timestamp")]
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn user_id(&self) -> UserId {
        UserId::from_stored(&self.id)
    }

    pub fn public(&self) -> UserPublic {
        UserPublic {
            id: self.user_id(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            is_guest: self.is_guest,
        }
    }

    pub fn private(&self) -> UserPrivate {
        UserPrivate {
            id: self.user_id(),
            username: self.username.clone(),
            email: self.email.clone(),
            display_name: self.display_name.clone(),
            is_guest: self.is_guest,
            created_at: self.created_at.and_utc(),
        }
    }
}

/// A name shown to others: trimmed, 1–32 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 32;

    pub const RULE: TextRule = TextRule {
        max_chars: Self::MAX_CHARS,
        multiline: false,
    };

    pub fn parse(raw: &str) -> Result<Self, TextError> {
        Self::RULE.require(raw).map(Self)
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A login name: 3–32 of a-z, 0-9, `_` and `.`, starting with a letter or digit; stored
/// lowercase so `Alice` and `alice` are one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim().to_lowercase();
        let len = name.chars().count();
        if !(3..=32).contains(&len) {
            return Err("must be 3 to 32 characters");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        {
            return Err("may contain only letters a-z, digits, '_' and '.'");
        }
        if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("must start with a letter or a digit");
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NewUserError {
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] DbError),
}

pub fn insert(conn: &mut DbConnection, user: &User) -> Result<(), NewUserError> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)
        .map(|_| ())
        .map_err(|e| {
            if is_unique_violation(&e) {
                // Which constraint fired is worded differently by each backend: ask again.
                let username_taken = user.username.as_ref().is_some_and(|name| {
                    users::table
                        .filter(users::username.eq(name))
                        .count()
                        .get_result::<i64>(conn)
                        .map(|n| n > 0)
                        .unwrap_or(false)
                });
                if username_taken {
                    NewUserError::UsernameTaken
                } else {
                    NewUserError::EmailTaken
                }
            } else {
                NewUserError::Db(e.into())
            }
        })
}

pub fn find(conn: &mut DbConnection, id: UserId) -> Result<Option<User>, DbError> {
    Ok(users::table
        .find(id.to_string())
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The public faces of the given users that still exist, by stored id (for views that name
/// people by id: reports, the audit log).
pub fn public_by_ids<'a>(
    conn: &mut DbConnection,
    ids: impl IntoIterator<Item = &'a str>,
) -> QueryResult<std::collections::HashMap<String, UserPublic>> {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(users::table
        .filter(users::id.eq_any(&ids))
        .select(User::as_select())
        .load(conn)?
        .into_iter()
        .map(|u| (u.id.clone(), u.public()))
        .collect())
}

/// Finds a registered account by username or email (both stored lowercase).
pub fn find_by_login(conn: &mut DbConnection, login: &str) -> Result<Option<User>, DbError> {
    let login = login.trim().to_lowercase();
    Ok(users::table
        .filter(users::username.eq(&login).or(users::email.eq(&login)))
        .filter(users::is_guest.eq(false))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Lan  ").unwrap().into_inner(), "Lan");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(33)).is_err());
        assert!(DisplayName::parse(&"ế".repeat(32)).is_ok());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
        assert!(DisplayName::parse("Ho\u{200B}st").is_err());
    }

    #[test]
    fn usernames_are_lowercased_and_restricted() {
        assert_eq!(Username::parse("Alice_01").unwrap().as_str(), "alice_01");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("_alice").is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("tiếng").is_err());
    }
}
