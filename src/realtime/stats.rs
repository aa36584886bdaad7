//! What the server counts for its operator: sessions by transport, events in and out by
//! name, refusals. Plain atomics and one small name table; the application exports them.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Distinct event names one tally keeps; later names count under [`OTHER_EVENTS`].
const MAX_NAMES: usize = 64;

/// The name events past [`MAX_NAMES`] count under.
pub const OTHER_EVENTS: &str = "other";

/// The live counters, shared by the engine and every namespace of one server.
#[derive(Default)]
pub(crate) struct Counters {
    /// Events a handler was registered for, by name: names the server chose, never a
    /// client's invention.
    pub events_in: EventTally,
    /// Events the server emitted (one per emit, to one socket or to many), by name.
    pub events_out: EventTally,
    /// Events no handler was registered for: the client's names are not kept.
    pub unknown_events_in: AtomicU64,
    /// Sessions closed for going over their packet rate.
    pub rate_limited_sessions: AtomicU64,
    pub refused_server_full: AtomicU64,
    pub refused_per_address: AtomicU64,
    pub refused_stopping: AtomicU64,
}

/// Counts by event name, at most [`MAX_NAMES`] names: after the first emit of a name, a count
/// is a short scan and an add under the lock, no allocation.
#[derive(Default)]
pub(crate) struct EventTally(Mutex<Vec<(Box<str>, u64)>>);

impl EventTally {
    pub fn add(&self, name: &str) {
        let mut names = self.0.lock();
        if let Some(entry) = names.iter_mut().find(|(n, _)| &**n == name) {
            entry.1 += 1;
            return;
        }
        let name = if names.len() < MAX_NAMES - 1 {
            name
        } else {
            OTHER_EVENTS
        };
        match names.iter_mut().find(|(n, _)| &**n == name) {
            Some(entry) => entry.1 += 1,
            None => names.push((name.into(), 1)),
        }
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        self.0
            .lock()
            .iter()
            .map(|(name, count)| (name.to_string(), *count))
            .collect()
    }
}

/// A snapshot of one server's counters ([`SocketIo::stats`](super::SocketIo::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealtimeStats {
    /// Open Engine.IO sessions on HTTP long-polling.
    pub polling_sessions: usize,
    /// Open Engine.IO sessions on a WebSocket.
    pub websocket_sessions: usize,
    /// Sockets connected to the main namespace.
    pub sockets: usize,
    /// Events received for which a handler was registered, by name.
    pub events_in: Vec<(String, u64)>,
    /// Events received that no handler was registered for.
    pub unknown_events_in: u64,
    /// Events emitted, by name (one per emit, whatever the number of recipients).
    pub events_out: Vec<(String, u64)>,
    /// Sessions closed for going over `max_packets_per_second`.
    pub rate_limited_sessions: u64,
    /// Handshakes refused because the server was at `max_sessions`.
    pub refused_server_full: u64,
    /// Handshakes refused by the per-address session cap or handshake rate.
    pub refused_per_address: u64,
    /// Handshakes refused because the server was stopping (draining).
    pub refused_stopping: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> RealtimeStats {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        RealtimeStats {
            events_in: self.events_in.snapshot(),
            unknown_events_in: load(&self.unknown_events_in),
            events_out: self.events_out.snapshot(),
            rate_limited_sessions: load(&self.rate_limited_sessions),
            refused_server_full: load(&self.refused_server_full),
            refused_per_address: load(&self.refused_per_address),
            refused_stopping: load(&self.refused_stopping),
            ..RealtimeStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_keeps_a_bounded_number_of_names() {
        let tally = EventTally::default();
        tally.add("chat:message");
        tally.add("chat:message");
        for i in 0..200 {
            tally.add(&format!("made-up-{i}"));
        }
        let names = tally.snapshot();
        assert_eq!(names.len(), MAX_NAMES);
        assert!(names.contains(&("chat:message".to_owned(), 2)));
        let other = names.iter().find(|(n, _)| n == OTHER_EVENTS).unwrap().1;
        assert_eq!(other, 200 - (MAX_NAMES as u64 - 2));
    }
}
