//! The server's own endpoints, beside the product's: liveness (`/healthz`), readiness
//! (`/readyz`), what forms need (`/api/meta`), ICE servers for browsers and the OpenAPI
//! document.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::config::MediaMode;
use crate::db;
use crate::error::{ApiError, ErrorCode};
use crate::ids::UserId;
use crate::rooms::domain::{Level, MAX_SEATS, MIN_SEATS};
use crate::state::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and, in cluster mode, Redis too; never while stopping.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_draining() {
        return Err(ApiError::draining());
    }
    if !state.mode.shared_state_ready().await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RedisUnavailable,
            "Redis does not answer: this replica cannot reach the others",
        ));
    }
    db::run(&state.pool, |conn| {
        diesel::connection::SimpleConnection::batch_execute(conn, "SELECT 1")
            .map_err(db::DbError::from)
    })
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "not ready: database");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            "The database does not answer",
        )
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta<'a> {
    version: &'static str,
    languages: &'a [String],
    default_language: &'a str,
    levels: Vec<&'static str>,
    min_participants: i32,
    max_participants: i32,
    default_max_participants: u8,
    media_mode: MediaMode,
}

/// What forms need to offer: languages, levels and seat limits of this server.
pub async fn meta(state: web::Data<AppState>) -> HttpResponse {
    let rooms = state.rooms.settings();
    HttpResponse::Ok().json(Meta {
        version: env!("CARGO_PKG_VERSION"),
        languages: &rooms.languages,
        default_language: &rooms.default_language,
        levels: Level::ALL.iter().map(|l| l.as_str()).collect(),
        min_participants: MIN_SEATS,
        max_participants: MAX_SEATS,
        default_max_participants: rooms.default_max_participants,
        media_mode: state.media.mode(),
    })
}

/// STUN/TURN servers for the browser's `RTCPeerConnection`. TURN credentials are minted for
/// the signed-in user (a bearer token); without one only the servers that need none are listed.
pub async fn ice_servers(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let user = match crate::auth::bearer_token(&req) {
        Some(token) => match state.accounts.authenticate(token).await {
            Ok(user) => Some(UserId::from_stored(&user.id)),
            Err(e) => return ApiError::from(e).error_response(),
        },
        None => None,
    };
    let host = req.connection_info().host().to_owned();
    let host = host_name(&host);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "iceServers": state.media.ice_servers(user, Some(host)),
            "uplinkKbps": state.media.uplink_kbps(),
        }))
}

/// `example.org:8443` → `example.org`, `[::1]:80` → `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => name,
        _ => host,
    }
}

pub const OPENAPI_JSON: &str = include_str!("../docs/openapi.json");

/// The document, with this server's languages where the file lists the default ones.
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(OPENAPI_JSON) else {
        return ApiError::internal("docs/openapi.json does not parse").error_response();
    };
    let languages = &state.rooms.settings().languages;
    let create = &mut doc["paths"]["/api/rooms"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["language"]["enum"];
    *create = serde_json::json!(languages);
    if let Some(list) = create.as_array_mut() {
        list.push(serde_json::Value::Null);
    }
    if let Some(params) = doc["paths"]["/api/rooms"]["get"]["parameters"].as_array_mut() {
        for param in params.iter_mut().filter(|p| p["name"] == "language") {
            param["schema"]["enum"] = serde_json::json!(languages);
        }
    }
    HttpResponse::Ok().json(doc)
}
