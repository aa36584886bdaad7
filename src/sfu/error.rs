//! The one error type the SFU hands its caller. Every variant has a stable `code()` the
//! gateway puts into its `{ok:false,error:{code,message}}` ack; internal causes stay in logs.

/// Why an SFU call failed. The room carries on in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SfuError {
    /// No such room in this SFU.
    #[error("unknown room")]
    UnknownRoom,
    /// The room exists but this participant has not joined it.
    #[error("unknown participant")]
    UnknownParticipant,
    /// The participant is already in the room (leave first, or it is a duplicate join).
    #[error("participant already joined")]
    AlreadyJoined,
    /// The room has `max_participants_per_room` participants.
    #[error("room is full")]
    RoomFull,
    /// Every UDP port of the configured media range is in use.
    #[error("no free media port")]
    NoFreePort,
    /// The SDP could not be parsed or applied.
    #[error("invalid session description: {0}")]
    InvalidSdp(String),
    /// The ICE candidate could not be parsed or applied.
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    /// The participant has sent as many distinct ICE candidates as one session may have
    /// (trickled and in its SDPs together); further ones are refused.
    #[error("too many ICE candidates")]
    TooManyCandidates,
    /// An ICE candidate arrived before any offer/answer for this participant.
    #[error("ICE candidate before any session description")]
    CandidateBeforeDescription,
    /// An answer arrived while the server had no offer outstanding.
    #[error("answer without a pending server offer")]
    UnexpectedAnswer,
    /// A client offer collided with a server offer that could not be rolled back.
    #[error("negotiation already in progress, answer the server's offer first")]
    NegotiationInProgress,
    /// Too many client offers in a short time.
    #[error("too many renegotiations, slow down")]
    RateLimited,
    /// The payload of a signaling event was not what the event name promises.
    #[error("malformed signaling message: {0}")]
    MalformedMessage(String),
    /// The SFU is shutting down.
    #[error("SFU is shutting down")]
    ShuttingDown,
    /// A WebRTC operation failed inside the SFU (details logged, not sent).
    #[error("internal media error")]
    Internal,
}

/// Logs a webrtc-rs failure with context and turns it into [`SfuError::Internal`].
pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> SfuError {
    tracing::warn!(error = %err, "sfu: {context} failed");
    SfuError::Internal
}
