//! Where a room's SFU lives. One process: here, always. A cluster: on one replica, the room's
//! owner, named in Redis under a lease; the other replicas send it their users' media requests
//! (`call`) and it answers (`serve`). Requests and answers are JSON: this module does not know
//! what they say.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::ids::RoomId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This process serves the room's media.
    Here,
    /// Another replica does (its instance id).
    Elsewhere(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("the replica serving this room's media did not answer")]
    Unreachable,
    #[error("cluster state unavailable: {0}")]
    Unavailable(String),
}

pub type RequestFuture = Pin<Box<dyn Future<Output = Value> + Send>>;
/// Answers one request from another replica.
pub type RequestHandler = Arc<dyn Fn(Value) -> RequestFuture + Send + Sync>;

#[async_trait]
pub trait MediaPlacement: Send + Sync {
    /// The replica that serves `room`; when none does, this one claims it.
    async fn owner(&self, room: RoomId) -> Result<Owner, PlacementError>;
    /// Is `node` still the owner of `room`?
    async fn is_owner(&self, room: RoomId, node: &str) -> bool;
    /// Renews this replica's claim on the rooms it serves; answers the ones it lost.
    async fn keep(&self, rooms: &[RoomId]) -> Vec<RoomId>;
    /// Gives `room` up (nobody of it is served here any more).
    async fn vacate(&self, room: RoomId);
    /// Sends `request` to replica `node` and waits for its answer.
    async fn call(&self, node: &str, request: Value) -> Result<Value, PlacementError>;
    /// Serves the requests other replicas send here.
    async fn serve(&self, handler: RequestHandler);
}

/// One process: every room's media is here.
pub struct LocalPlacement;

#[async_trait]
impl MediaPlacement for LocalPlacement {
    async fn owner(&self, _room: RoomId) -> Result<Owner, PlacementError> {
        Ok(Owner::Here)
    }

    async fn is_owner(&self, _room: RoomId, _node: &str) -> bool {
        false
    }

    async fn keep(&self, _rooms: &[RoomId]) -> Vec<RoomId> {
        Vec::new()
    }

    async fn vacate(&self, _room: RoomId) {}

    async fn call(&self, _node: &str, _request: Value) -> Result<Value, PlacementError> {
        Err(PlacementError::Unreachable)
    }

    async fn serve(&self, _handler: RequestHandler) {}
}
