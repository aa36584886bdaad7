//! `POST /api/auth/register|login|guest`, `GET /api/auth/me`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::Validate;

use super::extract::AuthUser;
use super::password;
use super::users::{self, DisplayName, NewUserError, User, UserPrivate, Username};
use crate::db::{self, DbError};
use crate::error::ApiError;
use crate::http::{client_ip, method_not_allowed};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/auth/register")
            .route(web::post().to(register))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/auth/login")
            .route(web::post().to(login))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/auth/guest")
            .route(web::post().to(guest))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/auth/me")
            .route(web::get().to(me))
            .default_service(web::to(method_not_allowed)),
    );
}

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
struct RegisterRequest {
    #[validate(length(min = 3, max = 32, message = "must be 3 to 32 characters"))]
    username: String,
    #[validate(
        email(message = "must be an email address"),
        length(max = 254, message = "must be at most 254 characters")
    )]
    email: String,
    #[validate(length(min = 8, max = 128, message = "must be 8 to 128 characters"))]
    password: String,
    #[validate(length(max = 32, message = "must be at most 32 characters"))]
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

#[derive(Debug, Deserialize, Validate)]
#[serde(rename_all = "camelCase")]
struct GuestRequest {
    #[validate(length(min = 1, max = 32, message = "must be 1 to 32 characters"))]
    display_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    token: String,
    user: UserPrivate,
}

impl From<NewUserError> for ApiError {
    fn from(err: NewUserError) -> Self {
        match err {
            NewUserError::UsernameTaken => {
                ApiError::conflict("USERNAME_TAKEN", "That username is already taken")
            }
            NewUserError::EmailTaken => {
                ApiError::conflict("EMAIL_TAKEN", "An account with that email already exists")
            }
            NewUserError::Db(e) => e.into(),
        }
    }
}

async fn limit_auth(
    state: &AppState,
    req: &HttpRequest,
    login: Option<&str>,
) -> Result<(), ApiError> {
    let rules = &state.limits.settings;
    let mut hits = Vec::with_capacity(2);
    if let Some(ip) = client_ip(req, state.settings.server.trust_proxy) {
        hits.push((format!("auth:ip:{ip}"), rules.auth_per_ip));
    }
    if let Some(login) = login {
        hits.push((
            format!("auth:login:{}", login.trim().to_lowercase()),
            rules.auth_per_login,
        ));
    }
    state.limits.check(&hits).await
}

fn session(state: &AppState, user: &User) -> Result<Session, ApiError> {
    let token = state
        .jwt
        .issue(user.uuid(), user.is_guest)
        .map_err(ApiError::internal)?;
    Ok(Session {
        token,
        user: user.private(),
    })
}

async fn register(
    state: web::Data<AppState>,
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
    limit_auth(&state, &req, Some(username.as_str())).await?;

    let password = body.password;
    let email = body.email.trim().to_lowercase();
    let username = username.as_str().to_owned();
    let user = db::run(&state.pool, move |conn| {
        let password_hash = password::hash(&password).map_err(ApiError::internal)?;
        let user = User {
            id: Uuid::new_v4().to_string(),
            username: Some(username),
            email: Some(email),
            password_hash: Some(password_hash),
            display_name: display_name.into_inner(),
            is_guest: false,
            created_at: db::now(),
        };
        users::insert(conn, &user)?;
        Ok::<_, ApiError>(user)
    })
    .await?;
    tracing::info!(user_id = %user.id, "account registered");
    Ok(HttpResponse::Created().json(session(&state, &user)?))
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate().map_err(|e| ApiError::validation(&e))?;
    limit_auth(&state, &req, Some(&body.login)).await?;
    let user = db::run(&state.pool, move |conn| {
        let found = users::find_by_login(conn, &body.login)?;
        let verified = match &found {
            Some(User {
                password_hash: Some(phc),
                ..
            }) => password::verify(&body.password, phc),
            _ => {
                password::verify_nothing(&body.password);
                false
            }
        };
        Ok::<_, DbError>(found.filter(|_| verified))
    })
    .await?
    .ok_or_else(|| {
        ApiError::unauthorized("INVALID_CREDENTIALS", "Wrong username, email or password")
    })?;
    Ok(HttpResponse::Ok().json(session(&state, &user)?))
}

async fn guest(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<GuestRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate().map_err(|e| ApiError::validation(&e))?;
    let display_name = DisplayName::parse(&body.display_name)
        .map_err(|m| ApiError::invalid_field("displayName", m))?;
    limit_auth(&state, &req, None).await?;
    let user = User {
        id: Uuid::new_v4().to_string(),
        username: None,
        email: None,
        password_hash: None,
        display_name: display_name.into_inner(),
        is_guest: true,
        created_at: db::now(),
    };
    let stored = user.clone();
    db::run(&state.pool, move |conn| users::insert(conn, &stored)).await?;
    Ok(HttpResponse::Created().json(session(&state, &user)?))
}

async fn me(user: AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(user.0.private())
}
