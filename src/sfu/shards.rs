//! The SFU's threads. Each shard is one OS thread running a current-thread tokio runtime, and
//! a room lives on one shard for its whole life: its owner task, its forwarders and downlinks,
//! and its participants' peer connections (webrtc-rs spawns a connection's driver on the
//! runtime that builds it, and the room task builds them). A packet therefore crosses no
//! thread between the publisher's connection and the subscribers' ones, and no task of one
//! room waits behind a busy room on another shard. Many rooms use every shard: a new room goes
//! to the shard with the fewest participants in its live rooms (then the fewest rooms). A room
//! stays where it was placed however it grows: its connections belong to that thread's
//! runtime.
//!
//! What is not a room's own runs on shard 0: the single-port demultiplexer (it hands each
//! datagram to its connection's shard through a channel), connectivity probes and the wait at
//! shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The running shards. Dropping the last clone does not stop them: [`Shards::stop`] does.
#[derive(Clone)]
pub(crate) struct Shards {
    shards: Arc<[Shard]>,
    stop: CancellationToken,
}

struct Shard {
    handle: Handle,
    /// The thread's id in the OS (Linux), for tools that read a thread's CPU time.
    tid: Option<u32>,
    /// Live rooms placed on this shard, and their participants.
    load: Arc<Load>,
}

#[derive(Default)]
struct Load {
    rooms: AtomicUsize,
    people: AtomicUsize,
}

/// A room's place on its shard, held by the room for as long as it lives; it tells the shard
/// how many people the room holds.
pub(crate) struct Placement {
    load: Arc<Load>,
    people: usize,
}

impl Placement {
    /// One more participant in the room.
    pub(crate) fn joined(&mut self) {
        self.people += 1;
        self.load.people.fetch_add(1, Ordering::Relaxed);
    }

    /// One participant fewer.
    pub(crate) fn left(&mut self) {
        if self.people > 0 {
            self.people -= 1;
            self.load.people.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        self.load.people.fetch_sub(self.people, Ordering::Relaxed);
        self.load.rooms.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shards {
    /// Starts `count` shard threads, named `sfu0`, `sfu1`, … (the benchmarks count the CPU of
    /// threads whose names start with `sfu`).
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let stop = CancellationToken::new();
        let mut shards = Vec::with_capacity(count);
        for index in 0..count {
            // On an error the threads started so far end too.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .inspect_err(|_| stop.cancel())?;
            let handle = runtime.handle().clone();
            let stopped = stop.clone();
            let (told, tid) = std::sync::mpsc::sync_channel(1);
            std::thread::Builder::new()
                .name(format!("sfu{index}"))
                .spawn(move || {
                    super::stats::use_stripe(index);
                    let _ = told.send(own_tid());
                    runtime.block_on(stopped.cancelled());
                    // Never waits for a task: what is left is dropped here, on its thread.
                    runtime.shutdown_background();
                })
                .inspect_err(|_| stop.cancel())?;
            shards.push(Shard {
                handle,
                tid: tid.recv().ok().flatten(),
                load: Arc::default(),
            });
        }
        Ok(Self {
            shards: shards.into(),
            stop,
        })
    }

    /// The shard with the fewest participants, then the fewest live rooms (the first of
    /// equals), and the new room's place on it.
    pub(crate) fn place_room(&self) -> (&Handle, Placement) {
        let shard = self
            .shards
            .iter()
            .min_by_key(|shard| {
                (
                    shard.load.people.load(Ordering::Relaxed),
                    shard.load.rooms.load(Ordering::Relaxed),
                )
            })
            .unwrap_or(&self.shards[0]);
        shard.load.rooms.fetch_add(1, Ordering::Relaxed);
        (
            &shard.handle,
            Placement {
                load: Arc::clone(&shard.load),
                people: 0,
            },
        )
    }

    /// Shard 0, for what belongs to no room.
    pub(crate) fn first(&self) -> &Handle {
        &self.shards[0].handle
    }

    /// Tasks alive on every shard, webrtc-rs's included.
    pub(crate) fn alive_tasks(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.handle.metrics().num_alive_tasks())
            .sum()
    }

    /// Each shard thread's id in the OS (`None` where /proc does not tell).
    pub(crate) fn thread_ids(&self) -> Vec<Option<u32>> {
        self.shards.iter().map(|shard| shard.tid).collect()
    }

    /// Live rooms on each shard.
    pub(crate) fn rooms(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.load.rooms.load(Ordering::Relaxed))
            .collect()
    }

    /// Participants in the live rooms of each shard.
    pub(crate) fn people(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.load.people.load(Ordering::Relaxed))
            .collect()
    }

    /// Ends every shard thread; their tasks are dropped without being waited for.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

/// The calling thread's id in the OS, from /proc (Linux).
fn own_tid() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[test]
    fn rooms_go_to_the_least_loaded_shard_and_stay_on_its_thread() {
        let shards = Shards::start(2).unwrap();
        let (first, a) = shards.place_room();
        let (second, b) = shards.place_room();
        assert_eq!(shards.rooms(), vec![1, 1]);
        let tids = shards.thread_ids();
        assert!(tids[0].is_some() && tids[1].is_some() && tids[0] != tids[1]);
        let on = |handle: &Handle| {
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                // A task the room spawns stays on the room's thread.
                let inner = tokio::spawn(async { thread_name() }).await.unwrap();
                let _ = tx.send((thread_name(), inner));
            });
            rx.recv().unwrap()
        };
        assert_eq!(on(first), ("sfu0".to_owned(), "sfu0".to_owned()));
        assert_eq!(on(second), ("sfu1".to_owned(), "sfu1".to_owned()));
        drop(a);
        assert_eq!(shards.rooms(), vec![0, 1]);
        let (third, _c) = shards.place_room();
        assert_eq!(on(third).0, "sfu0");
        drop(b);
        shards.stop();
    }

    #[test]
    fn a_new_room_goes_where_fewer_people_are() {
        let shards = Shards::start(2).unwrap();
        let thread_of = |handle: &Handle| {
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                let _ = tx.send(thread_name());
            });
            rx.recv().unwrap()
        };
        let (first, mut big) = shards.place_room();
        assert_eq!(thread_of(first), "sfu0");
        for _ in 0..6 {
            big.joined();
        }
        // Two new rooms both go to sfu1, the second although sfu1 then holds more rooms.
        let (second, mut small) = shards.place_room();
        small.joined();
        let (third, empty) = shards.place_room();
        assert_eq!(
            (thread_of(second), thread_of(third)),
            ("sfu1".into(), "sfu1".into())
        );
        assert_eq!((shards.rooms(), shards.people()), (vec![1, 2], vec![6, 1]));
        small.left();
        small.left(); // never below what the room added
        assert_eq!(shards.people(), vec![6, 0]);
        small.joined();
        drop(small); // a room that ends gives back its people too
        drop(empty);
        assert_eq!((shards.rooms(), shards.people()), (vec![1, 0], vec![6, 0]));
        drop(big);
        assert_eq!((shards.rooms(), shards.people()), (vec![0, 0], vec![0, 0]));
        shards.stop();
    }

    #[test]
    fn striped_counters_sum_every_thread() {
        let shards = Shards::start(2).unwrap();
        let counter = Arc::new(super::super::stats::Striped::default());
        let mut placements = Vec::new();
        for index in 0..2 {
            let (handle, placement) = shards.place_room();
            placements.push(placement);
            let counter = Arc::clone(&counter);
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                counter.add(10 + index);
                let _ = tx.send(());
            });
            rx.recv().unwrap();
        }
        counter.add(100); // a thread that is no shard adds to stripe 0
        assert_eq!(counter.get(), 121);
        assert_eq!(counter.stripe_values(3), vec![110, 11, 0]);
        shards.stop();
    }
}
