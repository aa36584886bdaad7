//! The one error type clients see: an HTTP status, a stable `code` the UI translates, a
//! human message, and optional details. Internal causes are logged, never sent. Every code
//! there is stands in `ErrorCode`; docs/openapi.json and web/src/errorCodes.ts are checked
//! against it (tests/api/error_codes.rs).

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::DbError;

/// Every error code the server sends, REST and Socket.IO alike, as clients spell it
/// (`SCREAMING_SNAKE_CASE`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    // The request itself.
    ValidationFailed,
    InvalidBody,
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidQuery,
    InvalidCursor,
    InvalidId,
    InvalidTarget,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    // Who is asking.
    Unauthenticated,
    InvalidToken,
    TokenExpired,
    InvalidCredentials,
    UsernameTaken,
    EmailTaken,
    // Rooms and seats.
    RoomNotFound,
    RoomEnded,
    RoomFull,
    Kicked,
    NotHost,
    NotInRoom,
    NotAParticipant,
    ParticipantNotFound,
    CannotKickSelf,
    TooManySeats,
    // Moderation (docs/MODERATION.md).
    NotCohost,
    NotAdmin,
    RoomLocked,
    BadRoomKey,
    MutedByHost,
    Blocked,
    Banned,
    SlowMode,
    MessageNotFound,
    TooManyBlocks,
    // Media.
    WrongMediaMode,
    MediaUnavailable,
    TooManyMediaSessions,
    SfuNotJoined,
    SfuUnknownRoom,
    SfuUnknownParticipant,
    SfuAlreadyJoined,
    SfuRoomFull,
    SfuNoFreePort,
    SfuInvalidSdp,
    SfuInvalidCandidate,
    SfuTooManyCandidates,
    SfuCandidateBeforeDescription,
    SfuUnexpectedAnswer,
    SfuNegotiationInProgress,
    SfuRateLimited,
    SfuMalformedMessage,
    SfuShuttingDown,
    SfuInternal,
    // The server.
    ServiceUnavailable,
    ServerDraining,
    NotReady,
    RedisUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub details: Option<Value>,
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorPayload<'a>,
}

/// The `{code, message, details?}` object, shared with Socket.IO acks.
#[derive(Debug, Serialize)]
pub struct ErrorPayload<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<&'a Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn payload(&self) -> ErrorPayload<'_> {
        ErrorPayload {
            code: self.code,
            message: &self.message,
            details: self.details.as_ref(),
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn forbidden(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn unprocessable(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "Too many requests; try again later",
        );
        err.retry_after_secs = Some(retry_after_secs.max(1));
        err
    }

    /// This process is stopping: another replica (or this one, restarted) takes the request.
    pub fn draining() -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerDraining,
            "This server is restarting; try again in a moment",
        );
        err.retry_after_secs = Some(1);
        err
    }

    pub fn invalid_id() -> Self {
        Self::bad_request(
            ErrorCode::InvalidId,
            "The id in the path is not a valid UUID",
        )
    }

    /// An unexpected failure: the cause goes to the log, the client gets a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Something went wrong on the server",
        )
    }

    /// Turns `validator` failures into 422 with per-field messages.
    pub fn validation(errors: &validator::ValidationErrors) -> Self {
        let mut fields = serde_json::Map::new();
        for (field, errs) in errors.field_errors() {
            let messages: Vec<Value> = errs
                .iter()
                .map(|e| {
                    Value::String(
                        e.message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| e.code.to_string()),
                    )
                })
                .collect();
            fields.insert(camel_case(&field), Value::Array(messages));
        }
        let summary = fields
            .iter()
            .map(|(field, msgs)| {
                let first = msgs
                    .as_array()
                    .and_then(|m| m.first())
                    .and_then(Value::as_str)
                    .unwrap_or("invalid");
                format!("{field}: {first}")
            })
            .collect::<Vec<_>>()
            .join("; ");
        Self::unprocessable(ErrorCode::ValidationFailed, summary)
            .with_details(Value::Object(fields))
    }

    /// A single-field validation failure found after parsing (e.g. an unknown language).
    pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Self {
        let mut fields = serde_json::Map::new();
        fields.insert(
            field.to_owned(),
            Value::Array(vec![Value::String(message.to_string())]),
        );
        Self::unprocessable(ErrorCode::ValidationFailed, format!("{field}: {message}"))
            .with_details(Value::Object(fields))
    }
}

/// Field names as clients spell them in JSON (`max_participants` → `maxParticipants`).
fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        response.json(ErrorBody {
            error: self.payload(),
        })
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::PoolTimeout => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "The server is busy; try again shortly",
            ),
            conflict if conflict.is_conflict() => {
                tracing::info!(error = %conflict, "a transaction gave way to another one");
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    "Someone else was changing the same thing at that moment; try again",
                );
                err.retry_after_secs = Some(1);
                err
            }
            other => Self::internal(other),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        Self::from(DbError::from(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_between_transactions_are_a_503_to_retry_not_a_500() {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        let deadlock = Error::DatabaseError(
            Kind::SerializationFailure,
            Box::new("Deadlock found when trying to get lock".to_string()),
        );
        let lock_wait = Error::DatabaseError(
            Kind::Unknown,
            Box::new("Lock wait timeout exceeded; try restarting transaction".to_string()),
        );
        for err in [deadlock, lock_wait] {
            let api = ApiError::from(err);
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(api.retry_after_secs, Some(1));
        }
        let other = Error::DatabaseError(Kind::Unknown, Box::new("disk full".to_string()));
        assert_eq!(
            ApiError::from(other).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn field_names_are_camel_case() {
        assert_eq!(camel_case("max_participants"), "maxParticipants");
        assert_eq!(camel_case("title"), "title");
    }
}
