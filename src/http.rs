//! The HTTP edge shared by every handler: how malformed JSON, queries and path ids are
//! answered, JSON 404/405, the client's IP, and the rate-limit checks.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::cluster::RateLimiter;
use crate::config::{RateLimitSettings, RateRule};
use crate::db::cursor::PageCursor;
use crate::error::ApiError;

pub fn json_config(max_body_bytes: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(|err, _req| json_error(err).into())
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("The request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the body as JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::unprocessable("INVALID_BODY", format!("The body does not fit: {e}"))
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request("MALFORMED_JSON", format!("The body is not valid JSON: {e}"))
        }
        other => ApiError::bad_request(
            "MALFORMED_JSON",
            format!("The body could not be read: {other}"),
        ),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match err {
            QueryPayloadError::Deserialize(e) => format!("Bad query string: {e}"),
            other => format!("Bad query string: {other}"),
        };
        ApiError::bad_request("INVALID_QUERY", message).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let _: &PathError = &err;
        ApiError::invalid_id().into()
    })
}

pub async fn not_found() -> HttpResponse {
    ApiError::not_found("NOT_FOUND", "No such API endpoint").error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "This endpoint does not accept that method",
    )
    .error_response()
}

/// The client's address: the socket peer, or the proxy's forwarded value when trusted.
pub fn client_ip(req: &HttpRequest, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let info = req.connection_info();
        if let Some(ip) = info.realip_remote_addr().and_then(|addr| {
            addr.parse::<IpAddr>()
                .ok()
                .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        }) {
            return Some(ip);
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

/// The configured limits over the shared limiter.
#[derive(Clone)]
pub struct Limits {
    pub settings: RateLimitSettings,
    limiter: Arc<dyn RateLimiter>,
}

impl Limits {
    pub fn new(settings: RateLimitSettings, limiter: Arc<dyn RateLimiter>) -> Self {
        Self { settings, limiter }
    }

    /// Counts one hit against each `(key, rule)`; the first one over its limit refuses.
    pub async fn check(&self, hits: &[(String, RateRule)]) -> Result<(), ApiError> {
        if !self.settings.enabled {
            return Ok(());
        }
        for (key, rule) in hits {
            if let Err(retry) = self.limiter.hit(key, *rule).await {
                tracing::info!(key, "rate limited");
                return Err(ApiError::rate_limited(retry.secs()));
            }
        }
        Ok(())
    }
}

pub fn bad_query(param: &str, message: &str) -> ApiError {
    ApiError::bad_request("INVALID_QUERY", format!("{param}: {message}"))
}

pub const MAX_PAGE: i64 = 100;
const DEFAULT_PAGE: i64 = 20;

/// A `limit` query parameter: 1–100, 20 when absent.
pub fn page_limit(raw: Option<i64>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(bad_query("limit", "must be between 1 and 100")),
    }
}

/// A `cursor` query parameter, as given out by an earlier page.
pub fn page_cursor(raw: Option<&str>) -> Result<Option<PageCursor>, ApiError> {
    match raw.filter(|c| !c.trim().is_empty()) {
        None => Ok(None),
        Some(raw) => PageCursor::decode(raw).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_CURSOR",
                "The cursor is not one this server gave out",
            )
        }),
    }
}
