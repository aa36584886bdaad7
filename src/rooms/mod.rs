//! Rooms: the REST handlers, the rules (create, join, leave, kick, end, host hand-over) in
//! one transaction each, the lobby queries, and `Rooms`, the service the realtime layer
//! calls too.

pub mod domain;
mod handlers;
pub mod lobby;
pub mod model;
pub mod moderation;
pub mod queries;
mod room_locks;
pub mod rules;
pub mod seat_cache;
mod service;

pub use handlers::{parse_update, routes};
pub use model::{ParticipantView, RoomDetail, RoomView};
pub use room_locks::RoomLocks;
pub use rules::RoomError;
pub use service::{LeaveResult, Rooms};
