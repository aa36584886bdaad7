//! Live counters: what exists now (rooms, peers, our tasks) and what flowed (packets).
//! Tests and the load tool read them to prove that state goes away with its participant.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes of a [`Striped`] counter: SFU threads beyond this many share stripes.
const STRIPES: usize = 32;

thread_local! {
    /// The stripe this thread adds to: its SFU thread's index, 0 on any other thread.
    static STRIPE: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread add to stripe `index` (modulo the stripes) of every
/// [`Striped`] counter: called once by each SFU thread.
pub(crate) fn use_stripe(index: usize) {
    STRIPE.with(|stripe| stripe.set(index % STRIPES));
}

/// One counter on its own cache line.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A counter that every packet adds to, from every SFU thread: each thread adds to its own
/// stripe, on a cache line no other thread writes, so the threads do not take the line from
/// each other on every packet; a read sums the stripes.
pub(crate) struct Striped {
    stripes: [Padded; STRIPES],
}

impl Default for Striped {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Padded::default()),
        }
    }
}

impl Striped {
    pub(crate) fn add(&self, n: u64) {
        let stripe = STRIPE.with(Cell::get);
        self.stripes[stripe].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The first `n` stripes, each on its own (for tests).
    #[cfg(test)]
    pub(crate) fn stripe_values(&self, n: usize) -> Vec<u64> {
        self.stripes
            .iter()
            .take(n)
            .map(|s| s.0.load(Ordering::Relaxed))
            .collect()
    }

    pub(crate) fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

impl std::fmt::Debug for Striped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

#[derive(Debug, Default)]
pub(crate) struct SfuMetrics {
    pub rooms: AtomicUsize,
    pub peers: AtomicUsize,
    pub tasks: AtomicUsize,
    pub received_packets: Striped,
    pub received_bytes: Striped,
    pub forwarded_packets: Striped,
    pub forwarded_bytes: Striped,
    pub dropped_packets: Striped,
    pub connections_failed: AtomicU64,
    pub connect_timeouts: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub relayed_nacks: AtomicU64,
    pub nack_requested_packets: AtomicU64,
    pub nack_answered_packets: AtomicU64,
    pub nack_relayed_packets: AtomicU64,
    pub nack_limited_packets: AtomicU64,
    pub ignored_candidates: AtomicU64,
    pub video_pauses: AtomicU64,
    pub recycled_legs: AtomicU64,
    pub layer_switches: AtomicU64,
    pub next_id: AtomicU64,
}

impl SfuMetrics {
    /// A process-unique id for peers and published tracks.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A snapshot of [`SfuMetrics`] plus the task count of the SFU's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    /// Rooms with an owner task.
    pub rooms: usize,
    /// Participants with a peer connection.
    pub peers: usize,
    /// Tasks the SFU spawned itself (room owners, forwarders, downlinks, feedback readers).
    pub tasks: usize,
    /// Every task alive on the SFU's threads, webrtc-rs drivers included.
    pub runtime_tasks: usize,
    /// Media ports currently leased.
    pub leased_ports: usize,
    /// RTP packets read from publishers since start (duplicates and muted tracks included).
    pub received_packets: u64,
    /// Their bytes (RTP header and payload).
    pub received_bytes: u64,
    /// RTP packets handed to subscriber connections since start.
    pub forwarded_packets: u64,
    /// Their bytes (RTP header and payload, as rewritten for the subscriber).
    pub forwarded_bytes: u64,
    /// RTP packets dropped because a subscriber's queue was full or its leg not ready.
    pub dropped_packets: u64,
    /// PLIs sent to publishers.
    pub keyframe_requests: u64,
    /// NACK messages sent to publishers on behalf of subscribers (for packets the
    /// retransmission buffer lacked).
    pub relayed_nacks: u64,
    /// Sequence numbers subscribers asked for in NACKs.
    pub nack_requested_packets: u64,
    /// Of those, resent to the subscriber from the retransmission buffer.
    pub nack_answered_packets: u64,
    /// Of those, asked of the publisher because the buffer lacked them.
    pub nack_relayed_packets: u64,
    /// Of those, refused by the per-leg limit (the same packet too soon, too many at once).
    pub nack_limited_packets: u64,
    /// Peer connections that reached ICE/DTLS `failed` since start.
    pub connections_failed: u64,
    /// Participants removed because they were not connected within `connect_timeout_ms`.
    pub connect_timeouts: u64,
    /// Client ICE candidates not probed since start (loopback or private addresses the
    /// configuration does not allow, link-local, multicast, `.local` names, …).
    pub ignored_candidates: u64,
    /// Times the video forwarded to a participant was paused because its downlink lost packets.
    pub video_pauses: u64,
    /// Subscriptions that reused a departed publisher's m-line instead of adding one.
    pub recycled_legs: u64,
    /// Times a subscriber leg switched from one simulcast layer to another (on a keyframe).
    pub layer_switches: u64,
    /// Routing entries of the shared socket in single-port mode (0 otherwise).
    pub mux_routes: usize,
    /// Connectivity probes open now (each also holds a leased port).
    pub probes: usize,
}

/// Counts one spawned task for as long as it lives.
pub(crate) struct TaskGuard(Arc<SfuMetrics>);

impl TaskGuard {
    pub(crate) fn new(metrics: &Arc<SfuMetrics>) -> Self {
        metrics.tasks.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(metrics))
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.tasks.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Spawns `future` on the current (SFU) runtime, counted in `tasks`.
pub(crate) fn spawn_counted<F>(metrics: &Arc<SfuMetrics>, future: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let guard = TaskGuard::new(metrics);
    tokio::spawn(async move {
        let _guard = guard;
        future.await;
    });
}
