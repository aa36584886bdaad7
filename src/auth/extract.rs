//! `AuthUser`: the signed-in user of a request, from `Authorization: Bearer <jwt>`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::service::Accounts;
use super::token::TokenError;
use super::users::User;
use crate::error::{ApiError, ErrorCode};

#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

/// The token of an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Expired => ApiError::unauthorized(
                ErrorCode::TokenExpired,
                "Your session has expired; sign in again",
            ),
            TokenError::Invalid => {
                ApiError::unauthorized(ErrorCode::InvalidToken, "The token is not valid")
            }
        }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let accounts = req.app_data::<web::Data<Accounts>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let accounts =
                accounts.ok_or_else(|| ApiError::internal("Accounts is not registered"))?;
            let token = token.ok_or_else(|| {
                ApiError::unauthorized(
                    ErrorCode::Unauthenticated,
                    "Sign in first: send Authorization: Bearer <token>",
                )
            })?;
            Ok(AuthUser(accounts.authenticate(&token).await?))
        })
    }
}
