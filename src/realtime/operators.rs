//! Targeted operations: `io.to(room).except(other).emit(..)`, `socket.to(room)`,
//! `io.in_(room).sockets_leave(..)`, … Everything goes through the namespace's adapter.

use std::sync::Arc;

use serde::Serialize;

use super::adapter::{BroadcastOptions, Room, SocketInfo};
use super::namespace::Namespace;
use super::packet::{self, Args};
use super::socket::EmitError;

/// A set of target sockets in one namespace, built by chaining, consumed by an action.
#[must_use = "an operator does nothing until an action (emit, sockets_join, …) is called"]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    opts: BroadcastOptions,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>, opts: BroadcastOptions) -> BroadcastOperator {
        BroadcastOperator { ns, opts }
    }

    /// Also targets sockets in `room` (union with earlier rooms).
    pub fn to(mut self, room: impl Into<Room>) -> BroadcastOperator {
        self.opts.rooms.push(room.into());
        self
    }

    /// Same as [`to`](Self::to) (socket.io's `in`).
    pub fn in_(self, room: impl Into<Room>) -> BroadcastOperator {
        self.to(room)
    }

    /// Excludes sockets in `room` (a socket id excludes that socket).
    pub fn except(mut self, room: impl Into<Room>) -> BroadcastOperator {
        self.opts.except.push(room.into());
        self
    }

    /// Only this node's sockets.
    pub fn local(mut self) -> BroadcastOperator {
        self.opts.flags.local = true;
        self
    }

    /// The options as they would be given to the adapter.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    /// Emits `event` with one argument to every target; encoded once.
    pub async fn emit<T: Serialize + ?Sized>(self, event: &str, data: &T) -> Result<(), EmitError> {
        let packet = packet::encode_event(&self.ns.name, event, data, None)?;
        self.ns.counters.events_out.add(event);
        self.ns
            .adapter
            .broadcast(Arc::new(packet), self.opts)
            .await?;
        Ok(())
    }

    /// Emits `event` with any arguments (binary included) to every target.
    pub async fn emit_args(self, event: &str, args: Args) -> Result<(), EmitError> {
        let packet = packet::encode_event_args(&self.ns.name, event, args, None)?;
        self.ns.counters.events_out.add(event);
        self.ns
            .adapter
            .broadcast(Arc::new(packet), self.opts)
            .await?;
        Ok(())
    }

    /// Makes the targets join `room`.
    pub async fn sockets_join(self, room: impl Into<Room>) -> Result<(), EmitError> {
        self.ns
            .adapter
            .add_sockets(self.opts, vec![room.into()])
            .await?;
        Ok(())
    }

    /// Makes the targets leave `room`.
    pub async fn sockets_leave(self, room: impl Into<Room>) -> Result<(), EmitError> {
        self.ns
            .adapter
            .del_sockets(self.opts, vec![room.into()])
            .await?;
        Ok(())
    }

    /// Disconnects the targets from the namespace (they get DISCONNECT).
    pub async fn disconnect_sockets(self) -> Result<(), EmitError> {
        self.ns.adapter.disconnect_sockets(self.opts, false).await?;
        Ok(())
    }

    /// Closes the targets' whole connections.
    pub async fn close_connections(self) -> Result<(), EmitError> {
        self.ns.adapter.disconnect_sockets(self.opts, true).await?;
        Ok(())
    }

    /// Describes the targets (ids and rooms), on every node.
    pub async fn fetch_sockets(self) -> Result<Vec<SocketInfo>, EmitError> {
        Ok(self.ns.adapter.fetch_sockets(self.opts).await?)
    }
}
