//! `POST /api/auth/register|login|guest`, `GET /api/auth/me`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::extract::AuthUser;
use super::service::{AccountError, Accounts, NewAccount};
use super::users::{DisplayName, UserPrivate, Username};
use crate::error::{ApiError, ErrorCode};
use crate::http::{Limits, allow};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/auth/register")
            .route(web::post().to(register))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/auth/login")
            .route(web::post().to(login))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/auth/guest")
            .route(web::post().to(guest))
            .default_service(allow("POST")),
    )
    .service(
        web::resource("/auth/me")
            .route(web::get().to(me))
            .default_service(allow("GET")),
    );
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
struct RegisterRequest {
    /// Checked by `Username`.
    username: String,
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    email: String,
    #[validate(length(min = 8, max = 128, message = "must be 8 to 128 characters"))]
    password: String,
    /// Checked by `DisplayName`.
    display_name: Option<String>,
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
struct LoginRequest {
    #[validate(length(min = 1, max = 254, message = "must be a username or an email"))]
    login: String,
    #[validate(length(min = 1, max = 128, message = "must be 1 to 128 characters"))]
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuestRequest {
    /// Checked by `DisplayName`.
    display_name: String,
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::UsernameTaken => {
                ApiError::conflict(ErrorCode::UsernameTaken, "That username is already taken")
            }
            AccountError::EmailTaken => ApiError::conflict(
                ErrorCode::EmailTaken,
                "An account with that email already exists",
            ),
            AccountError::InvalidCredentials => ApiError::unauthorized(
                ErrorCode::InvalidCredentials,
                "Wrong username, email or password",
            ),
            AccountError::Token(e) => e.into(),
            AccountError::AccountGone => ApiError::unauthorized(
                ErrorCode::InvalidToken,
                "The token's account no longer exists",
            ),
            AccountError::Banned(ban) => ApiError::forbidden(ErrorCode::Banned, ban.message()),
            AccountError::Db(e) => e.into(),
            AccountError::Internal(e) => ApiError::internal(e),
        }
    }
}

async fn limit_auth(
    limits: &Limits,
    req: &HttpRequest,
    login: Option<&str>,
) -> Result<(), ApiError> {
    limits.spend_sign_in(login, limits.client_ip(req)).await
}

async fn register(
    accounts: web::Data<Accounts>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate().map_err(|e| ApiError::validation(&e))?;
    let username =
        Username::parse(&body.username).map_err(|m| ApiError::invalid_field("username", m))?;
    let display_name = match body.display_name.as_deref() {
        Some(name) => {
            DisplayName::parse(name).map_err(|m| ApiError::invalid_field("displayName", m))?
        }
        None => DisplayName::parse(&body.username)
            .map_err(|m| ApiError::invalid_field("username", m))?,
    };
    limit_auth(&limits, &req, Some(username.as_str())).await?;
    let new = NewAccount {
        username,
        email: body.email,
        password: body.password,
        display_name,
    };
    let session = accounts.register(new, limits.client_ip(&req)).await?;
    Ok(HttpResponse::Created().json(session))
}

async fn login(
    accounts: web::Data<Accounts>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate().map_err(|e| ApiError::validation(&e))?;
    limit_auth(&limits, &req, Some(&body.login)).await?;
    let session = accounts.login(body.login, body.password).await?;
    Ok(HttpResponse::Ok().json(session))
}

async fn guest(
    accounts: web::Data<Accounts>,
    limits: web::Data<Limits>,
    req: HttpRequest,
    body: web::Json<GuestRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let display_name = DisplayName::parse(&body.display_name)
        .map_err(|m| ApiError::invalid_field("displayName", m))?;
    limit_auth(&limits, &req, None).await?;
    let session = accounts.guest(display_name, limits.client_ip(&req)).await?;
    Ok(HttpResponse::Created().json(session))
}

/// The user, and whether they are an instance admin.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    #[serde(flatten)]
    user: UserPrivate,
    is_admin: bool,
}

async fn me(accounts: web::Data<Accounts>, user: AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        is_admin: accounts.is_admin(&user.0),
        user: user.0.private(),
    })
}
