//! Accounts: register / login / guest, argon2 password hashes, JWTs, and the `AuthUser`
//! extractor every protected handler takes.

mod extract;
mod handlers;
pub mod password;
mod service;
pub mod token;
pub mod users;

pub use extract::{AuthUser, bearer_token};
pub use handlers::routes;
pub use service::{AccountError, Accounts, NewAccount, Session};
pub use token::{JwtKeys, TokenError};
pub use users::{User, UserPublic};
