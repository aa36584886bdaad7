//! Who holds each seat's media session: the sessions this replica's SFU serves, and those of
//! this replica's sockets that another replica serves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ids::{RoomId, UserId};

/// (room, user): one seat, one media session at most.
pub(super) type Seat = (RoomId, UserId);

/// Who holds a session this replica's SFU serves: the socket (on any replica) and the
/// client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub socket: String,
    pub ip: Option<IpAddr>,
    /// Names this session (the `sfu:join` ack's `sessionId`): `sfu:resume` must name it, and
    /// what a replaced session's task releases is its own session only.
    pub session: u64,
    /// The socket vanished (its network went away) and the session waits for `sfu:resume`.
    pub away: bool,
}

#[derive(Default)]
pub(super) struct Sessions {
    /// Served by this replica's SFU: seat → who holds it.
    local: Mutex<HashMap<Seat, Holder>>,
    /// This replica's sockets served by another replica: seat → (owner, socket).
    remote: Mutex<HashMap<Seat, (String, String)>>,
}

impl Sessions {
    pub(super) fn local(&self) -> MutexGuard<'_, HashMap<Seat, Holder>> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn remote(&self) -> MutexGuard<'_, HashMap<Seat, (String, String)>> {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Does `socket` hold the seat's session on this replica's SFU?
    pub(super) fn local_holder_is(&self, seat: Seat, socket: &str) -> bool {
        self.local().get(&seat).is_some_and(|h| h.socket == socket)
    }

    /// Does `socket` hold the seat's session, here or elsewhere?
    pub(super) fn held_by(&self, seat: Seat, socket: &str) -> bool {
        self.local_holder_is(seat, socket)
            || self.remote().get(&seat).is_some_and(|(_, s)| s == socket)
    }

    /// Sessions served here for `user`, and from `ip`, other than `seat`'s.
    pub(super) fn held(&self, seat: Seat, ip: Option<IpAddr>) -> (usize, usize) {
        let local = self.local();
        let others = local.iter().filter(|(s, _)| **s != seat);
        let by_user = others.clone().filter(|((_, u), _)| *u == seat.1).count();
        let by_ip = others.filter(|(_, h)| ip.is_some() && h.ip == ip).count();
        (by_user, by_ip)
    }

    /// The socket holding session `session`, while it is the seat's session.
    pub(super) fn socket_of(&self, seat: Seat, session: u64) -> Option<String> {
        self.local()
            .get(&seat)
            .filter(|h| h.session == session)
            .map(|h| h.socket.clone())
    }

    /// Marks the seat's session away if `socket` holds it (and it was not already); true when
    /// it did.
    pub(super) fn mark_away(&self, seat: Seat, socket: &str) -> bool {
        match self.local().get_mut(&seat) {
            Some(holder) if holder.socket == socket && !holder.away => {
                holder.away = true;
                true
            }
            _ => false,
        }
    }

    /// Hands session `session` of the seat to `socket` (from `ip`); false when the seat's
    /// session is another one, or none.
    pub(super) fn rebind(
        &self,
        seat: Seat,
        session: u64,
        socket: &str,
        ip: Option<IpAddr>,
    ) -> bool {
        match self.local().get_mut(&seat) {
            Some(holder) if holder.session == session => {
                holder.socket = socket.to_owned();
                holder.ip = ip;
                holder.away = false;
                true
            }
            _ => false,
        }
    }

    /// Forgets session `session` of the seat if it is still the seat's session.
    pub(super) fn release_session(&self, seat: Seat, session: u64) {
        let mut local = self.local();
        if local.get(&seat).is_some_and(|h| h.session == session) {
            local.remove(&seat);
        }
    }

    /// Forgets the local session if `socket` (or anyone, when None) holds it; true when it did.
    pub(super) fn release(&self, seat: Seat, socket: Option<&str>) -> bool {
        let mut local = self.local();
        match local.get(&seat) {
            Some(holder) if socket.is_none_or(|s| s == holder.socket) => {
                local.remove(&seat);
                true
            }
            _ => false,
        }
    }
}
