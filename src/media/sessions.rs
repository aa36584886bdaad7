//! Who holds each seat's media session: the sessions this replica's SFU serves, and those of
//! this replica's sockets that another replica serves.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ids::{RoomId, UserId};

/// (room, user): one seat, one media session at most.
pub(super) type Seat = (RoomId, UserId);

#[derive(Default)]
pub(super) struct Sessions {
    /// Served by this replica's SFU: seat → the socket (on any replica) holding it.
    local: Mutex<HashMap<Seat, String>>,
    /// This replica's sockets served by another replica: seat → (owner, socket).
    remote: Mutex<HashMap<Seat, (String, String)>>,
}

impl Sessions {
    pub(super) fn local(&self) -> MutexGuard<'_, HashMap<Seat, String>> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn remote(&self) -> MutexGuard<'_, HashMap<Seat, (String, String)>> {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Does `socket` hold the seat's session, here or elsewhere?
    pub(super) fn held_by(&self, seat: Seat, socket: &str) -> bool {
        self.local().get(&seat).is_some_and(|s| s == socket)
            || self.remote().get(&seat).is_some_and(|(_, s)| s == socket)
    }

    /// Forgets the local session if `socket` (or anyone, when None) holds it; true when it did.
    pub(super) fn release(&self, seat: Seat, socket: Option<&str>) -> bool {
        let mut local = self.local();
        match local.get(&seat) {
            Some(holder) if socket.is_none_or(|s| s == holder) => {
                local.remove(&seat);
                true
            }
            _ => false,
        }
    }
}
