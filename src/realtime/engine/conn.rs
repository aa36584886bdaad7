//! One Engine.IO session: the outgoing queue shared by whichever transport is active, the
//! heartbeat and rate-limit state. Shared across actix workers behind one small mutex.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::task::Waker;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::packet::Frame;
use crate::realtime::sid::Sid;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the transport or sent a `close` packet.
    TransportClose,
    /// The transport failed (read error, protocol error from the websocket layer).
    TransportError,
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client sent something that is not a valid packet.
    ParseError,
    /// A message or request body larger than `max_payload`.
    PayloadTooLarge,
    /// More packets than the configured rate allows.
    RateLimited,
    /// Two concurrent GET (or POST) polling requests for one session.
    Overlap,
    /// More queued for the client than `max_buffered_frames` or `max_buffered_bytes`: it
    /// does not read.
    SlowClient,
    /// The application (or the Socket.IO layer) closed it.
    ServerClose,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::PayloadTooLarge => "payload too large",
            CloseReason::RateLimited => "rate limited",
            CloseReason::Overlap => "overlapping polling requests",
            CloseReason::SlowClient => "client too slow",
            CloseReason::ServerClose => "forced server close",
        }
    }

    /// Whether the client asked for the close (then a pending poll gets `noop`, not `close`).
    fn client_initiated(self) -> bool {
        self == CloseReason::TransportClose
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Polling,
    Websocket,
}

/// Facts about the request that opened the session.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// Peer address of the TCP connection.
    pub peer_addr: Option<SocketAddr>,
    /// The client's address as `Config::client_address` tells it (behind a trusted proxy,
    /// the proxy's client); the per-address caps count it.
    pub client_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    /// Next ping is due at the deadline.
    PingDue,
    /// A ping was sent; the pong must arrive before the deadline.
    AwaitingPong,
}

/// A frame only the websocket writer sends, outside the Engine.IO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WsControl {
    /// `3probe` during an upgrade.
    PongProbe,
    /// Answer to a websocket-level ping.
    Pong(bytes::Bytes),
    /// End this websocket (upgrade abandoned, or the transport failed).
    Close,
}

/// What the websocket writer should send next.
pub(crate) struct WsOutput {
    pub control: Vec<WsControl>,
    pub frames: VecDeque<Frame>,
    /// Send a close frame after the rest and end.
    pub close: bool,
}

struct State {
    queue: VecDeque<Frame>,
    /// Bytes of the frames in `queue`.
    queued_bytes: usize,
    /// The websocket writer (response body) waiting for frames.
    ws_waker: Option<Waker>,
    ws_control: Vec<WsControl>,
    /// Which websocket owns the writer slot; bumped by each upgrade attempt.
    ws_gen: u32,
    closed: Option<CloseReason>,
    transport: TransportKind,
    upgrading: bool,
    get_active: bool,
    post_active: bool,
    heartbeat: Heartbeat,
    deadline: Instant,
    tokens: f32,
    refilled: Instant,
}

/// Result of a heartbeat step.
pub(crate) enum Beat {
    /// Sleep until this instant and call again.
    Wait(Instant),
    /// The client missed its pong: the session was closed.
    TimedOut,
}

/// An Engine.IO session. `D` is the per-session data of the layer above (the Socket.IO client).
pub struct Conn<D> {
    sid: Sid,
    state: Mutex<State>,
    /// Wakes a pending polling GET when frames are queued (the websocket writer has a waker).
    pub(crate) writable: Notify,
    /// Wakes the tasks that wait for the end of the session (owner, websocket reader).
    pub(crate) closed: Notify,
    handshake: Handshake,
    pub(crate) limits: Limits,
    data: D,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub rate: f32,
    pub burst: f32,
    pub max_buffered: usize,
    pub max_buffered_bytes: usize,
}

impl<D> Conn<D> {
    pub(crate) fn new(
        sid: Sid,
        transport: TransportKind,
        handshake: Handshake,
        limits: Limits,
        data: D,
    ) -> Conn<D> {
        let now = Instant::now();
        Conn {
            sid,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                ws_waker: None,
                ws_control: Vec::new(),
                ws_gen: 0,
                closed: None,
                transport,
                upgrading: false,
                get_active: false,
                post_active: false,
                heartbeat: Heartbeat::PingDue,
                deadline: now + limits.ping_interval,
                tokens: limits.burst,
                refilled: now,
            }),
            writable: Notify::new(),
            closed: Notify::new(),
            handshake,
            limits,
            data,
        }
    }

    pub fn sid(&self) -> Sid {
        self.sid
    }

    pub fn data(&self) -> &D {
        &self.data
    }

    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    pub fn transport(&self) -> TransportKind {
        self.state.lock().transport
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed.is_some()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// Queues one frame. Returns false when the session is closed.
    pub fn send(&self, frame: Frame) -> bool {
        self.send_all(std::iter::once(frame))
    }

    /// Queues frames contiguously (a Socket.IO packet and its attachments).
    /// Returns false when the session is closed.
    pub fn send_all(&self, frames: impl IntoIterator<Item = Frame>) -> bool {
        let (overflow, waker) = {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return false;
            }
            for frame in frames {
                st.queued_bytes += frame.len();
                st.queue.push_back(frame);
            }
            let waker = match st.transport {
                TransportKind::Websocket => st.ws_waker.take(),
                TransportKind::Polling => None,
            };
            let overflow = st.queue.len() > self.limits.max_buffered
                || st.queued_bytes > self.limits.max_buffered_bytes;
            (overflow, waker)
        };
        if overflow {
            self.close(CloseReason::SlowClient);
            return false;
        }
        match waker {
            Some(waker) => waker.wake(),
            None => self.writable.notify_one(),
        }
        true
    }

    /// Wakes whichever writer is waiting.
    fn wake_writers(&self) {
        let waker = self.state.lock().ws_waker.take();
        if let Some(waker) = waker {
            waker.wake();
        }
        self.writable.notify_one();
    }

    /// Called by the websocket writer: registers its waker and takes what it should send.
    pub(crate) fn ws_poll(&self, generation: u32, waker: &Waker) -> WsOutput {
        let mut st = self.state.lock();
        if st.ws_gen != generation {
            // A newer websocket took over: this one just ends.
            return WsOutput {
                control: Vec::new(),
                frames: VecDeque::new(),
                close: true,
            };
        }
        match &st.ws_waker {
            Some(w) if w.will_wake(waker) => {}
            _ => st.ws_waker = Some(waker.clone()),
        }
        let control = std::mem::take(&mut st.ws_control);
        let frames = if st.transport == TransportKind::Websocket {
            st.queued_bytes = 0;
            std::mem::take(&mut st.queue)
        } else {
            VecDeque::new()
        };
        let close = st.closed.is_some() || control.contains(&WsControl::Close);
        WsOutput {
            control,
            frames,
            close,
        }
    }

    /// The response body of websocket `generation` was dropped: the HTTP layer gave up on
    /// the connection (a reset TCP connection ends there, with no end-of-stream on the read
    /// side). If that websocket was the session's transport, the session ends now rather than
    /// at the next missed pong.
    pub(crate) fn ws_writer_dropped(&self, generation: u32) {
        let active = {
            let st = self.state.lock();
            st.closed.is_none()
                && st.ws_gen == generation
                && st.transport == TransportKind::Websocket
        };
        if active {
            self.close(CloseReason::TransportError);
        }
    }

    /// Queues a control frame for websocket `generation` (ignored if it no longer owns the writer).
    pub(crate) fn ws_control(&self, generation: u32, control: WsControl) {
        let waker = {
            let mut st = self.state.lock();
            if st.ws_gen != generation {
                return;
            }
            match control {
                // Pongs are coalesced: a flood of pings queues one pong, with the data of the
                // latest ping (RFC 6455 §5.5.3 allows answering only the most recent).
                WsControl::Pong(data) => {
                    st.ws_control.retain(|c| !matches!(c, WsControl::Pong(_)));
                    st.ws_control.push(WsControl::Pong(data));
                }
                other => st.ws_control.push(other),
            }
            st.ws_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Closes the session; idempotent. The owner task then removes it and tells the layer above.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(reason);
            if st.transport == TransportKind::Polling && st.get_active {
                // A pending GET ends with `noop` when the client asked to close, else `close`.
                st.queue.push_back(if reason.client_initiated() {
                    Frame::NOOP
                } else {
                    Frame::CLOSE
                });
            }
        }
        tracing::debug!(sid = %self.sid, reason = reason.as_str(), "engine.io session closed");
        self.wake_writers();
        self.closed.notify_waiters();
    }

    /// Takes every queued frame.
    #[cfg(test)]
    pub(crate) fn drain(&self) -> VecDeque<Frame> {
        let mut st = self.state.lock();
        st.queued_bytes = 0;
        std::mem::take(&mut st.queue)
    }

    /// Takes one token from the packet-rate bucket; false when the client is over its rate.
    pub(crate) fn take_token(&self) -> bool {
        if self.limits.rate <= 0.0 {
            return true;
        }
        let mut st = self.state.lock();
        let now = Instant::now();
        let elapsed = now.duration_since(st.refilled).as_secs_f32();
        st.refilled = now;
        st.tokens = (st.tokens + elapsed * self.limits.rate).min(self.limits.burst);
        if st.tokens >= 1.0 {
            st.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub(crate) fn on_pong(&self) {
        let mut st = self.state.lock();
        if st.heartbeat == Heartbeat::AwaitingPong {
            st.heartbeat = Heartbeat::PingDue;
            st.deadline = Instant::now() + self.limits.ping_interval;
        }
    }

    /// Advances the heartbeat: sends the ping when due, closes on a missed pong.
    pub(crate) fn heartbeat(&self, now: Instant) -> Beat {
        let timed_out = {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return Beat::TimedOut;
            }
            if now < st.deadline {
                return Beat::Wait(st.deadline);
            }
            match st.heartbeat {
                Heartbeat::PingDue => {
                    st.queue.push_back(Frame::PING);
                    st.heartbeat = Heartbeat::AwaitingPong;
                    // From the scheduled time, so timer lateness does not add up.
                    st.deadline += self.limits.ping_timeout;
                    false
                }
                Heartbeat::AwaitingPong => true,
            }
        };
        if timed_out {
            self.close(CloseReason::PingTimeout);
            Beat::TimedOut
        } else {
            self.wake_writers();
            Beat::Wait(self.state.lock().deadline)
        }
    }

    // --- long-polling bookkeeping ---

    /// Closes the session if its pong is overdue, even if the timer task has not run yet.
    fn check_pong_deadline(&self) {
        let expired = {
            let st = self.state.lock();
            st.closed.is_none()
                && st.heartbeat == Heartbeat::AwaitingPong
                && Instant::now() >= st.deadline
        };
        if expired {
            self.close(CloseReason::PingTimeout);
        }
    }

    /// Marks a GET as active. Errors tell the handler what to answer.
    pub(crate) fn begin_get(&self) -> Result<(), PollError> {
        self.begin_request(|st| &mut st.get_active)
    }

    /// Marks a POST as active. Errors tell the handler what to answer.
    pub(crate) fn begin_post(&self) -> Result<(), PollError> {
        self.begin_request(|st| &mut st.post_active)
    }

    /// A polling request starts: refused on a closed or upgraded connection; a second request
    /// of the same kind while one is active closes the connection (the protocol's overlap).
    fn begin_request(&self, active: impl FnOnce(&mut State) -> &mut bool) -> Result<(), PollError> {
        self.check_pong_deadline();
        let overlap = {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return Err(PollError::Closed);
            }
            if st.transport != TransportKind::Polling {
                return Err(PollError::WrongTransport);
            }
            std::mem::replace(active(&mut st), true)
        };
        if overlap {
            self.close(CloseReason::Overlap);
            return Err(PollError::Overlap);
        }
        Ok(())
    }

    pub(crate) fn upgrading(&self) -> bool {
        self.state.lock().upgrading
    }

    pub(crate) fn get_pending(&self) -> bool {
        self.state.lock().get_active
    }

    pub(crate) fn end_get(&self) {
        self.state.lock().get_active = false;
    }

    /// What a pending GET should answer now, if anything.
    pub(crate) fn poll_ready(&self) -> Option<Vec<Frame>> {
        let mut st = self.state.lock();
        if !st.queue.is_empty() {
            st.queued_bytes = 0;
            return Some(st.queue.drain(..).collect());
        }
        if st.closed.is_some() {
            return Some(vec![Frame::CLOSE]);
        }
        if st.transport != TransportKind::Polling || st.upgrading {
            // An upgrade is under way: end this poll so the client can switch.
            return Some(vec![Frame::NOOP]);
        }
        None
    }

    pub(crate) fn end_post(&self) {
        self.state.lock().post_active = false;
    }

    // --- upgrade bookkeeping ---

    /// A websocket with this sid opened: allowed only for a polling session not yet upgrading.
    /// Returns the generation that identifies this websocket's writer.
    pub(crate) fn begin_upgrade(&self) -> Option<u32> {
        let mut st = self.state.lock();
        if st.closed.is_some() || st.transport != TransportKind::Polling || st.upgrading {
            return None;
        }
        st.upgrading = true;
        st.ws_gen = st.ws_gen.wrapping_add(1);
        st.ws_control.clear();
        st.ws_waker = None;
        Some(st.ws_gen)
    }

    /// `2probe` answered: end the pending poll with a noop.
    pub(crate) fn probe_answered(&self) {
        self.writable.notify_one();
    }

    /// `5` received: the websocket is now the transport.
    pub(crate) fn finish_upgrade(&self) {
        {
            let mut st = self.state.lock();
            st.transport = TransportKind::Websocket;
            st.upgrading = false;
        }
        self.wake_writers();
    }

    pub(crate) fn cancel_upgrade(&self) {
        let mut st = self.state.lock();
        if st.transport == TransportKind::Polling {
            st.upgrading = false;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollError {
    Closed,
    WrongTransport,
    Overlap,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(transport: TransportKind) -> Conn<()> {
        Conn::new(
            Sid::random(),
            transport,
            Handshake::default(),
            Limits {
                ping_interval: Duration::from_millis(300),
                ping_timeout: Duration::from_millis(200),
                rate: 10.0,
                burst: 3.0,
                max_buffered: 4,
                max_buffered_bytes: 64,
            },
            (),
        )
    }

    #[test]
    fn heartbeat_pings_then_times_out_without_pong() {
        let c = conn(TransportKind::Websocket);
        let start = Instant::now();
        assert!(matches!(c.heartbeat(start), Beat::Wait(_)));
        assert!(c.drain().is_empty());
        let t1 = start + Duration::from_millis(301);
        assert!(matches!(c.heartbeat(t1), Beat::Wait(_)));
        assert_eq!(c.drain(), VecDeque::from([Frame::PING]));
        assert!(matches!(
            c.heartbeat(t1 + Duration::from_millis(201)),
            Beat::TimedOut
        ));
        assert_eq!(c.close_reason(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn pong_prevents_the_timeout_and_reschedules_the_ping() {
        let c = conn(TransportKind::Websocket);
        let now = Instant::now();
        c.heartbeat(now + Duration::from_millis(301));
        assert_eq!(c.drain(), VecDeque::from([Frame::PING]));
        c.on_pong();
        // Right after the pong nothing is due; the next ping comes a full interval later.
        match c.heartbeat(Instant::now()) {
            Beat::Wait(next) => assert!(next >= Instant::now() + Duration::from_millis(250)),
            Beat::TimedOut => panic!("timed out despite pong"),
        }
        assert!(c.drain().is_empty());
        assert!(!c.is_closed());
    }

    #[test]
    fn overlapping_gets_close_the_session_and_wake_the_first_with_close() {
        let c = conn(TransportKind::Polling);
        assert_eq!(c.begin_get(), Ok(()));
        assert_eq!(c.begin_get(), Err(PollError::Overlap));
        assert_eq!(c.close_reason(), Some(CloseReason::Overlap));
        assert_eq!(c.poll_ready(), Some(vec![Frame::CLOSE]));
    }

    #[test]
    fn client_close_ends_a_pending_get_with_noop() {
        let c = conn(TransportKind::Polling);
        c.begin_get().unwrap();
        c.close(CloseReason::TransportClose);
        assert_eq!(c.poll_ready(), Some(vec![Frame::NOOP]));
        c.end_get();
        assert_eq!(c.begin_get(), Err(PollError::Closed));
    }

    #[test]
    fn upgrade_moves_the_session_to_websocket_once() {
        let c = conn(TransportKind::Polling);
        assert_eq!(c.begin_upgrade(), Some(1));
        assert_eq!(c.begin_upgrade(), None);
        assert_eq!(c.poll_ready(), Some(vec![Frame::NOOP]));
        c.finish_upgrade();
        assert_eq!(c.transport(), TransportKind::Websocket);
        assert_eq!(c.begin_get(), Err(PollError::WrongTransport));
        assert_eq!(c.begin_post(), Err(PollError::WrongTransport));
        assert_eq!(c.begin_upgrade(), None);
    }

    #[test]
    fn rate_limit_allows_the_burst_then_refuses() {
        let c = conn(TransportKind::Websocket);
        assert!(c.take_token());
        assert!(c.take_token());
        assert!(c.take_token());
        assert!(!c.take_token());
    }

    #[test]
    fn too_many_queued_bytes_close_a_slow_client() {
        let c = conn(TransportKind::Websocket);
        assert!(c.send(Frame::Binary(bytes::Bytes::from(vec![0; 60]))));
        assert!(!c.send(Frame::Binary(bytes::Bytes::from(vec![0; 10]))));
        assert_eq!(c.close_reason(), Some(CloseReason::SlowClient));
    }

    #[test]
    fn what_the_writer_took_no_longer_counts() {
        let c = conn(TransportKind::Websocket);
        assert!(c.send(Frame::Binary(bytes::Bytes::from(vec![0; 60]))));
        assert_eq!(c.drain().len(), 1);
        assert!(c.send(Frame::Binary(bytes::Bytes::from(vec![0; 60]))));
        assert!(!c.is_closed());
    }

    #[test]
    fn a_ping_flood_queues_one_pong() {
        let c = conn(TransportKind::Websocket);
        for i in 0..1000u32 {
            c.ws_control(
                0,
                WsControl::Pong(bytes::Bytes::from(i.to_be_bytes().to_vec())),
            );
        }
        let waker = futures_util::task::noop_waker();
        let out = c.ws_poll(0, &waker);
        assert_eq!(
            out.control,
            vec![WsControl::Pong(bytes::Bytes::from(
                999u32.to_be_bytes().to_vec()
            ))]
        );
    }

    #[test]
    fn too_many_queued_frames_close_a_slow_client() {
        let c = conn(TransportKind::Websocket);
        for _ in 0..4 {
            assert!(c.send(Frame::NOOP));
        }
        assert!(!c.send(Frame::NOOP));
        assert_eq!(c.close_reason(), Some(CloseReason::SlowClient));
        assert!(!c.send(Frame::NOOP));
    }
}
