//! Presence: which seats have a live connection. A seat whose last socket went away (or that
//! was taken over REST and never got one) starts a grace clock; when the clock runs out the
//! owner of the seat is gone and the seat is released. A reload or a network blip does not
//! end a room.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::ids::{RoomId, UserId};

#[async_trait]
pub trait Presence: Send + Sync {
    /// A seat was taken; its clock starts unless a socket already holds it.
    async fn seat_taken(&self, room: RoomId, user: UserId);
    /// One of the user's sockets entered the room.
    async fn socket_entered(&self, room: RoomId, user: UserId, socket: &str);
    /// One of the user's sockets left the room or disconnected; returns how many are left.
    async fn socket_left(&self, room: RoomId, user: UserId, socket: &str) -> usize;
    /// The seat is gone (left, kicked): forget it.
    async fn seat_freed(&self, room: RoomId, user: UserId);
    /// The room ended: forget all its seats.
    async fn room_ended(&self, room: RoomId);
    /// Seats unattended for longer than `grace`; they are forgotten here and the caller
    /// releases them.
    async fn take_expired(&self, grace: Duration) -> Vec<(RoomId, UserId)>;
    /// Does a socket on this node hold the seat now? (A seat taken off the clock is held
    /// again when a socket stepped in meanwhile.)
    fn held_here(&self, room: RoomId, user: UserId) -> bool;
    /// This process is stopping gracefully: its sockets are gone. In one process the seats
    /// are put on the clock again at the next start; in a cluster the other replicas take
    /// over at once.
    async fn node_stopping(&self) {}
}

#[derive(Default)]
struct Seat {
    sockets: HashSet<String>,
    /// Set while no socket holds the seat.
    unattended_since: Option<Instant>,
}

#[derive(Default)]
pub struct InMemoryPresence {
    seats: Mutex<HashMap<(RoomId, UserId), Seat>>,
}

impl InMemoryPresence {
    pub fn new() -> Self {
        Self::default()
    }

    fn seats(&self) -> std::sync::MutexGuard<'_, HashMap<(RoomId, UserId), Seat>> {
        self.seats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_expired_at(&self, grace: Duration, now: Instant) -> Vec<(RoomId, UserId)> {
        let mut seats = self.seats();
        let expired: Vec<(RoomId, UserId)> = seats
            .iter()
            .filter(|(_, seat)| {
                seat.unattended_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= grace)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in &expired {
            seats.remove(key);
        }
        expired
    }
}

#[async_trait]
impl Presence for InMemoryPresence {
    async fn seat_taken(&self, room: RoomId, user: UserId) {
        let mut seats = self.seats();
        let seat = seats.entry((room, user)).or_default();
        if seat.sockets.is_empty() && seat.unattended_since.is_none() {
            seat.unattended_since = Some(Instant::now());
        }
    }

    async fn socket_entered(&self, room: RoomId, user: UserId, socket: &str) {
        let mut seats = self.seats();
        let seat = seats.entry((room, user)).or_default();
        seat.sockets.insert(socket.to_owned());
        seat.unattended_since = None;
    }

    async fn socket_left(&self, room: RoomId, user: UserId, socket: &str) -> usize {
        let mut seats = self.seats();
        let Some(seat) = seats.get_mut(&(room, user)) else {
            return 0;
        };
        seat.sockets.remove(socket);
        if seat.sockets.is_empty() && seat.unattended_since.is_none() {
            seat.unattended_since = Some(Instant::now());
        }
        seat.sockets.len()
    }

    async fn seat_freed(&self, room: RoomId, user: UserId) {
        self.seats().remove(&(room, user));
    }

    async fn room_ended(&self, room: RoomId) {
        self.seats().retain(|(r, _), _| *r != room);
    }

    async fn take_expired(&self, grace: Duration) -> Vec<(RoomId, UserId)> {
        self.take_expired_at(grace, Instant::now())
    }

    fn held_here(&self, room: RoomId, user: UserId) -> bool {
        self.seats()
            .get(&(room, user))
            .is_some_and(|seat| !seat.sockets.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(15);

    #[tokio::test]
    async fn a_seat_without_a_socket_expires_after_the_grace_period() {
        let presence = InMemoryPresence::new();
        let (room, user) = (RoomId::random(), UserId::random());
        presence.seat_taken(room, user).await;
        let now = Instant::now();
        assert!(presence.take_expired_at(GRACE, now).is_empty());
        assert_eq!(
            presence.take_expired_at(GRACE, now + GRACE),
            vec![(room, user)]
        );
        assert!(
            presence.take_expired_at(GRACE, now + GRACE * 2).is_empty(),
            "taken once"
        );
    }

    #[tokio::test]
    async fn a_socket_holds_the_seat_until_the_last_one_leaves() {
        let presence = InMemoryPresence::new();
        let (room, user) = (RoomId::random(), UserId::random());
        presence.seat_taken(room, user).await;
        presence.socket_entered(room, user, "tab-1").await;
        presence.socket_entered(room, user, "tab-2").await;
        let later = Instant::now() + GRACE * 2;
        assert!(presence.take_expired_at(GRACE, later).is_empty());
        assert_eq!(presence.socket_left(room, user, "tab-1").await, 1);
        assert!(presence.take_expired_at(GRACE, later).is_empty());
        assert_eq!(presence.socket_left(room, user, "tab-2").await, 0);
        assert!(
            presence.take_expired_at(GRACE, Instant::now()).is_empty(),
            "within grace"
        );
        // A reload: the socket comes back within the grace period and the clock stops.
        presence.socket_entered(room, user, "tab-3").await;
        assert!(presence.take_expired_at(GRACE, later).is_empty());
        presence.socket_left(room, user, "tab-3").await;
        assert_eq!(presence.take_expired_at(GRACE, later), vec![(room, user)]);
    }

    #[tokio::test]
    async fn a_seat_taken_off_the_clock_is_held_again_when_a_socket_steps_in() {
        let presence = InMemoryPresence::new();
        let (room, user) = (RoomId::random(), UserId::random());
        presence.seat_taken(room, user).await;
        assert!(!presence.held_here(room, user), "on the clock");
        let expired = presence.take_expired_at(GRACE, Instant::now() + GRACE);
        assert_eq!(expired, vec![(room, user)]);
        assert!(!presence.held_here(room, user), "released");
        // The owner's socket steps in before the release reaches the database.
        presence.socket_entered(room, user, "tab").await;
        assert!(presence.held_here(room, user));
    }

    #[tokio::test]
    async fn freed_seats_and_ended_rooms_are_forgotten() {
        let presence = InMemoryPresence::new();
        let room = RoomId::random();
        let (a, b) = (UserId::random(), UserId::random());
        presence.seat_taken(room, a).await;
        presence.seat_taken(room, b).await;
        presence.seat_freed(room, a).await;
        let later = Instant::now() + GRACE * 2;
        assert_eq!(presence.take_expired_at(GRACE, later), vec![(room, b)]);
        presence.seat_taken(room, a).await;
        presence.room_ended(room).await;
        assert!(presence.take_expired_at(GRACE, later).is_empty());
    }
}
