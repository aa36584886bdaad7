//! The SFU's threads. Each shard is one OS thread running a current-thread tokio runtime, and
//! a room lives on one shard for its whole life: its owner task, its forwarders and downlinks,
//! and its participants' peer connections (webrtc-rs spawns a connection's driver on the
//! runtime that builds it, and the room task builds them). A packet therefore crosses no
//! thread between the publisher's connection and the subscribers' ones, and no task of one
//! room waits behind a busy room on another shard. Many rooms use every shard: a new room goes
//! to the shard with the fewest live rooms.
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
    /// Live rooms placed on this shard.
    rooms: Arc<AtomicUsize>,
}

/// A room's place on its shard, held by the room for as long as it lives.
pub(crate) struct Placement {
    rooms: Arc<AtomicUsize>,
}

impl Drop for Placement {
    fn drop(&mut self) {
        self.rooms.fetch_sub(1, Ordering::Relaxed);
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
                    let _ = told.send(own_tid());
                    runtime.block_on(stopped.cancelled());
                    // Never waits for a task: what is left is dropped here, on its thread.
                    runtime.shutdown_background();
                })
                .inspect_err(|_| stop.cancel())?;
            shards.push(Shard {
                handle,
                tid: tid.recv().ok().flatten(),
                rooms: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Self {
            shards: shards.into(),
            stop,
        })
    }

    /// The shard with the fewest live rooms (the first of equals), and the new room's place
    /// on it.
    pub(crate) fn place_room(&self) -> (&Handle, Placement) {
        let shard = self
            .shards
            .iter()
            .min_by_key(|shard| shard.rooms.load(Ordering::Relaxed))
            .unwrap_or(&self.shards[0]);
        shard.rooms.fetch_add(1, Ordering::Relaxed);
        (
            &shard.handle,
            Placement {
                rooms: Arc::clone(&shard.rooms),
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
            .map(|shard| shard.rooms.load(Ordering::Relaxed))
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
}
