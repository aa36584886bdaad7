//! The HTTP edge shared by every handler: how malformed JSON, queries and path ids are
//! answered, JSON 404/405, the client's IP, and the rate-limit checks.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::client_ip::ClientIp;
use crate::cluster::RateLimiter;
use crate::config::{RateLimitSettings, RateRule};
use crate::db::cursor::PageCursor;
use crate::error::{ApiError, ErrorCode};
use crate::ids::UserId;

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
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Send the body as JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::unprocessable(
            ErrorCode::InvalidBody,
            format!("The body does not fit: {}", shape_error(&e)),
        ),
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(
            ErrorCode::MalformedJson,
            format!(
                "The body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        ),
        _ => ApiError::bad_request(ErrorCode::MalformedJson, "The body could not be read"),
    }
}

/// What is wrong with a JSON value's shape, without quoting it: error texts never echo what
/// a client sent (a reply is not a free amplifier).
pub fn shape_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde's "missing field `x`" names the field, not the value.
    if let Some(field) = text.strip_prefix("missing field ") {
        let field = field.split(" at line").next().unwrap_or(field);
        if field.len() <= 64 {
            return format!("missing field {field}");
        }
    }
    format!(
        "a value has the wrong type or form (line {}, column {})",
        e.line(),
        e.column()
    )
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match err {
            QueryPayloadError::Deserialize(e) => format!("Bad query string: {e}"),
            other => format!("Bad query string: {other}"),
        };
        ApiError::bad_request(ErrorCode::InvalidQuery, message).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let _: &PathError = &err;
        ApiError::invalid_id().into()
    })
}

pub async fn not_found() -> HttpResponse {
    ApiError::not_found(ErrorCode::NotFound, "No such API endpoint").error_response()
}

/// A resource that answers GET only (and 405 with `Allow: GET` to the rest).
pub fn get_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(allow("GET"))
}

/// The answer to any other method on a resource that accepts `methods` ("GET, POST"): 405
/// with the `Allow` header RFC 9110 asks for.
pub fn allow(methods: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut response = ApiError::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "This endpoint does not accept that method",
        )
        .error_response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(methods),
        );
        response
    })
}

/// What a rate budget is spent on. One budget per action, whichever way it arrives (REST or
/// a socket event): the keys are built here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    CreateRoom,
    JoinRoom,
    Chat,
    /// Every other socket event (media state, hands, signaling).
    Event,
    /// Lobby pages and searches, by client address (no sign-in needed).
    Lobby,
    /// Connectivity probes of the `/doctor` page (each one a peer connection for 30 s).
    MediaProbe,
    /// Reports filed against people in a room (REST and `room:report`).
    Report,
}

impl Budget {
    /// Every budget, in the order of [`Refusals`]'s counts.
    pub const ALL: [Budget; 7] = [
        Budget::CreateRoom,
        Budget::JoinRoom,
        Budget::Chat,
        Budget::Event,
        Budget::Lobby,
        Budget::MediaProbe,
        Budget::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Budget::CreateRoom => "room:create",
            Budget::JoinRoom => "room:join",
            Budget::Chat => "chat",
            Budget::Event => "event",
            Budget::Lobby => "lobby",
            Budget::MediaProbe => "media:probe",
            Budget::Report => "report",
        }
    }

    /// The rule per user, and per client address where there is one.
    fn rules(self, settings: &RateLimitSettings) -> (RateRule, Option<RateRule>) {
        match self {
            Budget::CreateRoom => (
                settings.create_room_per_user,
                Some(settings.create_room_per_ip),
            ),
            Budget::JoinRoom => (settings.join_per_user, Some(settings.join_per_ip)),
            Budget::Chat => (settings.chat_per_user, None),
            Budget::Event => (settings.events_per_user, None),
            Budget::Lobby => (settings.lobby_per_ip, None),
            Budget::MediaProbe => (settings.media_probe_per_user, None),
            Budget::Report => (settings.report_per_user, None),
        }
    }
}

/// The configured limits over the shared limiter, and who the client is.
#[derive(Clone)]
pub struct Limits {
    pub settings: RateLimitSettings,
    limiter: Arc<dyn RateLimiter>,
    client_ip: ClientIp,
    refusals: Arc<Refusals>,
}

/// Requests and events refused by a rate budget on this node, per budget (the order of
/// [`Budget::ALL`]) and for sign-ins, for the operator (src/metrics).
#[derive(Debug, Default)]
pub struct Refusals {
    by_budget: [AtomicU64; Budget::ALL.len()],
    sign_in: AtomicU64,
}

impl Refusals {
    /// `(budget name, refusals)` for every budget, sign-ins as `"auth"`.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        Budget::ALL
            .iter()
            .zip(&self.by_budget)
            .map(|(budget, n)| (budget.name(), n.load(Ordering::Relaxed)))
            .chain([("auth", self.sign_in.load(Ordering::Relaxed))])
            .collect()
    }

    fn count(&self, budget: Option<Budget>) {
        let counter = match budget {
            // `ALL` lists the budgets in declaration order.
            Some(budget) => &self.by_budget[budget as usize],
            None => &self.sign_in,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Limits {
    pub fn new(
        settings: RateLimitSettings,
        limiter: Arc<dyn RateLimiter>,
        client_ip: ClientIp,
    ) -> Self {
        Self {
            settings,
            limiter,
            client_ip,
            refusals: Arc::default(),
        }
    }

    /// What the budgets refused on this node.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// The client's address (`crate::client_ip`).
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        self.client_ip.of(req)
    }

    /// Spends one unit of `budget` for `user`, and for the client's address when known.
    pub async fn spend(
        &self,
        budget: Budget,
        user: UserId,
        ip: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let (per_user, per_ip) = budget.rules(&self.settings);
        let name = budget.name();
        let mut hits = vec![(format!("{name}:user:{user}"), per_user)];
        if let (Some(ip), Some(rule)) = (ip, per_ip) {
            hits.push((format!("{name}:ip:{ip}"), rule));
        }
        self.check(Some(budget), &hits).await
    }

    /// Spends one unit of a budget kept per client address only.
    pub async fn spend_by_address(
        &self,
        budget: Budget,
        ip: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let (rule, _) = budget.rules(&self.settings);
        let who = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        self.check(
            Some(budget),
            &[(format!("{}:ip:{who}", budget.name()), rule)],
        )
        .await
    }

    /// Spends one sign-in attempt (register, login, guest) for the client's address and, when
    /// a login is named, for that login from that address. Never for the login alone: then
    /// anyone could lock its owner out by failing on purpose; a guesser spread over many
    /// addresses still spends each address's budget.
    pub async fn spend_sign_in(
        &self,
        login: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let mut hits = Vec::with_capacity(2);
        let who = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        hits.push((format!("auth:ip:{who}"), self.settings.auth_per_ip));
        if let Some(login) = login {
            hits.push((
                format!("auth:login:{}:ip:{who}", login.trim().to_lowercase()),
                self.settings.auth_per_login,
            ));
        }
        self.check(None, &hits).await
    }

    /// Counts one hit against each `(key, rule)`; the first one over its limit refuses.
    /// `budget` None: a sign-in.
    async fn check(
        &self,
        budget: Option<Budget>,
        hits: &[(String, RateRule)],
    ) -> Result<(), ApiError> {
        if !self.settings.enabled {
            return Ok(());
        }
        for (key, rule) in hits {
            if let Err(retry) = self.limiter.hit(key, *rule).await {
                tracing::info!(key, "rate limited");
                self.refusals.count(budget);
                return Err(ApiError::rate_limited(retry.secs()));
            }
        }
        Ok(())
    }
}

pub fn bad_query(param: &str, message: &str) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidQuery, format!("{param}: {message}"))
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
    match raw {
        None => Ok(None),
        Some(raw) => PageCursor::decode(raw).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidCursor,
                "The cursor is not one this server gave out",
            )
        }),
    }
}

/// A serde field reader: an integer that may be written with a zero fraction (`12.0`, which
/// JSON Schema counts as an integer); anything else is refused.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = <Option<serde_json::Number> as serde::Deserialize>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom("not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_budget_has_its_own_refusal_count() {
        for (at, budget) in Budget::ALL.iter().enumerate() {
            assert_eq!(*budget as usize, at, "{budget:?}");
        }
        let refusals = Refusals::default();
        refusals.count(Some(Budget::Chat));
        refusals.count(Some(Budget::Chat));
        refusals.count(None);
        let counts = refusals.counts();
        assert_eq!(counts.len(), Budget::ALL.len() + 1);
        assert!(counts.contains(&("chat", 2)));
        assert!(counts.contains(&("auth", 1)));
        assert!(counts.contains(&("room:join", 0)));
    }
}
