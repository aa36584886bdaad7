//! `RoomLocks`: on this node, one room's seat changes and the sockets that follow them happen
//! in order. A socket joining holds its room's lock from the database write until it is
//! inside the Socket.IO room; a domain event about a room is delivered and acted on under
//! the same lock; the grace clock releases a seat under it. So an event caused by a later
//! write never overtakes the join it follows (a kick right after a join reaches the joiner),
//! and a seat is not released while a socket is stepping into it.
//!
//! The locks are striped: a fixed number of mutexes, a room hashed onto one. Memory stays
//! the same however many rooms there are; two rooms sharing a stripe only wait for each other.

use std::hash::BuildHasher;

use tokio::sync::{Mutex, MutexGuard};

use crate::ids::RoomId;

const STRIPES: usize = 64;

pub struct RoomLocks {
    stripes: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for RoomLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl RoomLocks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the room's turn (first come, first served).
    pub async fn lock(&self, room: RoomId) -> MutexGuard<'_, ()> {
        let stripe = (self.hasher.hash_one(room) % STRIPES as u64) as usize;
        self.stripes[stripe].lock().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_room_waits_for_its_lock() {
        let locks = Arc::new(RoomLocks::new());
        let room = RoomId::random();
        let held = locks.lock(room).await;
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _turn = locks.lock(room).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second lock of a room waits");
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter gets its turn")
            .unwrap();
    }
}
