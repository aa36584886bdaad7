//! `Accounts`: register, sign in, guests, and whose a token is. Password hashing (argon2,
//! tens of milliseconds of CPU) runs on the blocking pool outside any database connection,
//! and only as many at once as there are cores, so a burst of logins neither holds the pool
//! nor starves every other request.

use std::sync::Arc;

use crate::ids::UserId;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::password;
use super::token::{JwtKeys, TokenError};
use super::users::{self, DisplayName, NewUserError, User, UserPrivate, Username};
use crate::db::{self, DbError, DbPool};
use crate::moderation::bans::{BanNotice, Bans};
use std::net::IpAddr;

/// A signed-in session: the token and who it is.
#[derive(Debug, Serialize)]
pub struct Session {
    pub token: String,
    pub user: UserPrivate,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("username taken")]
    UsernameTaken,
    #[error("email taken")]
    EmailTaken,
    #[error("wrong login or password")]
    InvalidCredentials,
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A valid token whose account is gone (a reset database with a kept secret).
    #[error("the token's account no longer exists")]
    AccountGone,
    /// The account (or, for a new guest, its network) is banned from the instance.
    #[error("banned")]
    Banned(BanNotice),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

impl From<NewUserError> for AccountError {
    fn from(err: NewUserError) -> Self {
        match err {
            NewUserError::UsernameTaken => Self::UsernameTaken,
            NewUserError::EmailTaken => Self::EmailTaken,
            NewUserError::Db(e) => Self::Db(e),
        }
    }
}

/// What registering needs, already parsed.
pub struct NewAccount {
    pub username: Username,
    pub email: String,
    pub password: String,
    pub display_name: DisplayName,
}

#[derive(Clone)]
pub struct Accounts {
    pool: DbPool,
    jwt: JwtKeys,
    hashing: Arc<Semaphore>,
    bans: Bans,
}

impl Accounts {
    pub fn new(pool: DbPool, jwt: JwtKeys, bans: Bans) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            pool,
            jwt,
            hashing: Arc::new(Semaphore::new(cores)),
            bans,
        }
    }

    /// The instance's bans and admins.
    pub fn bans(&self) -> &Bans {
        &self.bans
    }

    /// Is this user an instance admin (`[moderation] admins`)?
    pub fn is_admin(&self, user: &User) -> bool {
        self.bans.admins().contains(user)
    }

    /// `ip`: the client's address, kept as a keyed hash (docs/MODERATION.md).
    pub async fn register(
        &self,
        new: NewAccount,
        ip: Option<IpAddr>,
    ) -> Result<Session, AccountError> {
        let password = new.password;
        let password_hash = self
            .hashing(move || password::hash(&password).map_err(|e| e.to_string()))
            .await?
            .map_err(AccountError::Internal)?;
        let user = User {
            id: UserId::random().to_string(),
            username: Some(new.username.as_str().to_owned()),
            email: Some(new.email.trim().to_lowercase()),
            password_hash: Some(password_hash),
            display_name: new.display_name.into_inner(),
            is_guest: false,
            created_at: db::now(),
            ip_hash: ip.map(|ip| self.bans.ip_hash(ip)),
        };
        let stored = user.clone();
        db::run(&self.pool, move |conn| {
            users::insert(conn, &stored).map_err(AccountError::from)
        })
        .await?;
        tracing::info!(user_id = %user.id, "account registered");
        self.session(&user)
    }

    pub async fn login(&self, login: String, password: String) -> Result<Session, AccountError> {
        let found = db::run(&self.pool, move |conn| users::find_by_login(conn, &login)).await?;
        let phc = found.as_ref().and_then(|u| u.password_hash.clone());
        // An unknown login costs one verification too: timings do not tell which accounts exist.
        let verified = self
            .hashing(move || match phc {
                Some(phc) => password::verify(&password, &phc),
                None => {
                    password::verify_nothing(&password);
                    false
                }
            })
            .await?;
        match found {
            Some(user) if verified => self.session(&user),
            _ => Err(AccountError::InvalidCredentials),
        }
    }

    /// A guest from a banned network (`ip`'s hash) is refused.
    pub async fn guest(
        &self,
        display_name: DisplayName,
        ip: Option<IpAddr>,
    ) -> Result<Session, AccountError> {
        let ip_hash = ip.map(|ip| self.bans.ip_hash(ip));
        if let Some(hash) = ip_hash.clone() {
            if self.bans.ip_banned(hash).await? {
                return Err(AccountError::Banned(BanNotice {
                    reason: None,
                    until: None,
                }));
            }
        }
        let user = User {
            id: UserId::random().to_string(),
            username: None,
            email: None,
            password_hash: None,
            display_name: display_name.into_inner(),
            is_guest: true,
            created_at: db::now(),
            ip_hash,
        };
        let stored = user.clone();
        db::run(&self.pool, move |conn| {
            users::insert(conn, &stored).map_err(AccountError::from)
        })
        .await?;
        self.session(&user)
    }

    /// The account a token was issued to.
    pub async fn authenticate(&self, token: &str) -> Result<User, AccountError> {
        let claims = self.jwt.verify(token)?;
        if let Some(ban) = self.bans.check(claims.sub) {
            return Err(AccountError::Banned(ban));
        }
        db::run(&self.pool, move |conn| users::find(conn, claims.sub))
            .await?
            .ok_or(AccountError::AccountGone)
    }

    fn session(&self, user: &User) -> Result<Session, AccountError> {
        let token = self
            .jwt
            .issue(user.user_id(), user.is_guest)
            .map_err(|e| AccountError::Internal(e.to_string()))?;
        Ok(Session {
            token,
            user: user.private(),
        })
    }

    /// Runs password work on the blocking pool, a few at a time.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AccountError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| AccountError::Internal(e.to_string()))
    }
}
