//! The media port range: one port per participant, leased on join and given back when the
//! lease is dropped (which happens when the participant's SFU state is dropped).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Hands out ports of `min..=max` round-robin, skipping leased ones.
#[derive(Debug)]
pub(crate) struct PortPool {
    min: u16,
    max: u16,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    next: u16,
    leased: BTreeSet<u16>,
}

/// A leased port; returns to the pool on drop.
#[derive(Debug)]
pub(crate) struct PortLease {
    port: u16,
    pool: Arc<PortPool>,
}

impl PortLease {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut state) = self.pool.state.lock() {
            state.leased.remove(&self.port);
        }
    }
}

impl PortPool {
    pub(crate) fn new(min: u16, max: u16) -> Arc<Self> {
        Arc::new(Self {
            min,
            max,
            state: Mutex::new(PoolState {
                next: min,
                leased: BTreeSet::new(),
            }),
        })
    }

    /// Leases the next free port, or `None` when all are taken. Round-robin rather than
    /// lowest-first so a port just released (whose old peer may still send) is reused last.
    pub(crate) fn lease(self: &Arc<Self>) -> Option<PortLease> {
        let mut state = self.state.lock().ok()?;
        let size = u32::from(self.max - self.min) + 1;
        for _ in 0..size {
            let port = state.next;
            state.next = if port >= self.max { self.min } else { port + 1 };
            if state.leased.insert(port) {
                return Some(PortLease {
                    port,
                    pool: Arc::clone(self),
                });
            }
        }
        None
    }

    pub(crate) fn leased(&self) -> usize {
        self.state.lock().map(|s| s.leased.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_every_port_once_then_none_and_reuses_after_drop() {
        let pool = PortPool::new(5000, 5002);
        let a = pool.lease().expect("first");
        let b = pool.lease().expect("second");
        let c = pool.lease().expect("third");
        let mut ports = vec![a.port(), b.port(), c.port()];
        ports.sort_unstable();
        assert_eq!(ports, vec![5000, 5001, 5002]);
        assert!(pool.lease().is_none(), "range exhausted");
        let freed = b.port();
        drop(b);
        assert_eq!(pool.leased(), 2);
        assert_eq!(pool.lease().map(|l| l.port()), Some(freed));
    }
}
