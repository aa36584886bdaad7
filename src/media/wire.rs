//! What crosses between replicas for media (requests to a room's owner and its answers), and
//! the errors media requests answer with.

use actix_web::http::StatusCode;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::ids::{RoomId, UserId};
use crate::sfu::{MediaKind, SfuError};

/// What one replica asks the owner of a room's media (or itself) to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub(super) enum MediaRequest {
    Join {
        room: RoomId,
        user: UserId,
        publish: bool,
        socket: String,
        /// The client's address, for the per-address cap (absent from older replicas).
        #[serde(default)]
        ip: Option<IpAddr>,
    },
    Signal {
        room: RoomId,
        user: UserId,
        socket: String,
        event: String,
        payload: Value,
    },
    /// The socket holding the session asked to stop, or is gone for good.
    Leave {
        room: RoomId,
        user: UserId,
        socket: String,
    },
    /// The socket holding the session vanished (its network went away): the session waits
    /// `resume_grace_secs` for `sfu:resume` before it closes.
    Away {
        room: RoomId,
        user: UserId,
        socket: String,
    },
    /// `sfu:resume`: session `session` of the seat goes on with `socket`.
    Resume {
        room: RoomId,
        user: UserId,
        session: u64,
        socket: String,
        #[serde(default)]
        ip: Option<IpAddr>,
    },
    Mute {
        room: RoomId,
        user: UserId,
        kind: MediaKind,
        muted: bool,
    },
    /// `sfu:prefs` of the socket holding the session: what it wants to receive.
    Prefs {
        room: RoomId,
        user: UserId,
        socket: String,
        prefs: ReceivePrefs,
    },
}

/// What a participant wants to receive (`sfu:prefs`); fields left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivePrefs {
    /// False: audio-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<bool>,
    /// The height in device pixels at which each publisher's video is shown (simulcast layer
    /// choice); replaces the last map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiles: Option<std::collections::BTreeMap<UserId, u16>>,
}

/// An `ApiError` as it crosses between replicas.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    status: u16,
    code: String,
    message: String,
}

pub(super) fn to_wire(result: Result<Value, ApiError>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(err) => json!({ "error": WireError {
            status: err.status.as_u16(),
            code: err.code.as_str().to_owned(),
            message: err.message.to_string(),
        }}),
    }
}

pub(super) fn from_wire(reply: Value) -> Result<Value, ApiError> {
    if let Some(ok) = reply.get("ok") {
        return Ok(ok.clone());
    }
    let err: WireError = serde_json::from_value(reply.get("error").cloned().unwrap_or_default())
        .map_err(|e| ApiError::internal(format!("a media reply from another replica: {e}")))?;
    // A code this replica does not know (a newer one's) stays an error.
    let code = err.code.parse().unwrap_or(ErrorCode::SfuInternal);
    Err(ApiError::new(
        StatusCode::from_u16(err.status).unwrap_or(StatusCode::BAD_GATEWAY),
        code,
        err.message,
    ))
}

pub(super) fn unavailable(reason: impl std::fmt::Display) -> ApiError {
    tracing::warn!(%reason, "media: the room's media replica is out of reach");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::MediaUnavailable,
        "The server that carries this room's audio and video does not answer; try again",
    )
}

pub(super) fn too_many_sessions(why: &'static str) -> ApiError {
    ApiError::conflict(ErrorCode::TooManyMediaSessions, why)
}

pub(super) fn not_joined() -> ApiError {
    ApiError::conflict(ErrorCode::SfuNotJoined, "Send sfu:join first")
}

pub(super) fn session_gone() -> ApiError {
    ApiError::conflict(
        ErrorCode::SfuNotJoined,
        "That media session has ended; send sfu:join",
    )
}

pub(super) fn wrong_mode(wanted: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::WrongMediaMode,
        format!("This server does not use {wanted} media (see GET /api/meta, mediaMode)"),
    )
}

impl From<SfuError> for ApiError {
    fn from(err: SfuError) -> Self {
        use StatusCode as S;
        let (status, code) = match err {
            SfuError::UnknownRoom => (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuUnknownRoom),
            SfuError::UnknownParticipant => {
                (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuUnknownParticipant)
            }
            SfuError::AlreadyJoined => (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuAlreadyJoined),
            SfuError::RoomFull => (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuRoomFull),
            SfuError::NoFreePort => (S::SERVICE_UNAVAILABLE, ErrorCode::SfuNoFreePort),
            SfuError::InvalidSdp(_) => (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuInvalidSdp),
            SfuError::InvalidCandidate(_) => {
                (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuInvalidCandidate)
            }
            SfuError::TooManyCandidates => {
                (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuTooManyCandidates)
            }
            SfuError::CandidateBeforeDescription => (
                S::UNPROCESSABLE_ENTITY,
                ErrorCode::SfuCandidateBeforeDescription,
            ),
            SfuError::UnexpectedAnswer => (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuUnexpectedAnswer),
            SfuError::NegotiationInProgress => {
                (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuNegotiationInProgress)
            }
            SfuError::RateLimited => (S::TOO_MANY_REQUESTS, ErrorCode::SfuRateLimited),
            SfuError::MalformedMessage(_) => {
                (S::UNPROCESSABLE_ENTITY, ErrorCode::SfuMalformedMessage)
            }
            SfuError::ShuttingDown => (S::SERVICE_UNAVAILABLE, ErrorCode::SfuShuttingDown),
            SfuError::Internal => (S::SERVICE_UNAVAILABLE, ErrorCode::SfuInternal),
        };
        ApiError::new(status, code, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_cross_replicas_unchanged() {
        assert_eq!(
            from_wire(to_wire(Ok(json!({"iceServers": []})))).unwrap(),
            json!({"iceServers": []})
        );
        let err = from_wire(to_wire(Err(SfuError::InvalidSdp("bad".into()).into()))).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::SfuInvalidSdp)
        );
        let err = from_wire(to_wire(Err(not_joined()))).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::CONFLICT, ErrorCode::SfuNotJoined)
        );
        // A code this replica does not know stays an error, never a success.
        let odd = json!({"error": {"status": 500, "code": "SOMETHING_NEW", "message": "x"}});
        assert_eq!(from_wire(odd).unwrap_err().code, ErrorCode::SfuInternal);
    }

    #[test]
    fn requests_are_tagged_json() {
        let request = MediaRequest::Mute {
            room: RoomId::random(),
            user: UserId::random(),
            kind: MediaKind::Video,
            muted: true,
        };
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(wire["op"], "mute");
        assert_eq!(wire["kind"], "video");
        assert!(matches!(
            serde_json::from_value(wire).unwrap(),
            MediaRequest::Mute { muted: true, .. }
        ));
        let resume = serde_json::to_value(MediaRequest::Resume {
            room: RoomId::random(),
            user: UserId::random(),
            session: u64::MAX,
            socket: "s2".into(),
            ip: None,
        })
        .unwrap();
        assert_eq!(resume["op"], "resume");
        assert!(matches!(
            serde_json::from_value(resume).unwrap(),
            MediaRequest::Resume {
                session: u64::MAX,
                ..
            }
        ));
        let prefs = serde_json::to_value(MediaRequest::Prefs {
            room: RoomId::random(),
            user: UserId::random(),
            socket: "s1".into(),
            prefs: ReceivePrefs {
                video: Some(false),
                tiles: None,
            },
        })
        .unwrap();
        assert_eq!(
            (&prefs["op"], &prefs["prefs"]["video"]),
            (&json!("prefs"), &json!(false))
        );
        assert!(matches!(
            serde_json::from_value(prefs).unwrap(),
            MediaRequest::Prefs {
                prefs: ReceivePrefs {
                    video: Some(false),
                    tiles: None
                },
                ..
            }
        ));
    }
}
