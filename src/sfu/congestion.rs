//! Audio first on a congested downlink. Each participant's connection estimates what the path
//! towards it carries (send-side Google Congestion Control from the browser's transport-wide CC
//! feedback; no pacer: forwarded media is never held back) and a gate per participant pauses
//! the video forwarded to it while that path loses packets, so its audio gets through. After a
//! back-off the video is tried again (with a keyframe); if the loss comes back, the next try
//! waits twice as long.

use rtc::interceptor::{
    BandwidthEstimator, CongestionControlBuilder, EstimatorStats, Gcc, PacketReport, Registry, Slot,
};
use rtc::peer_connection::configuration::interceptor_registry::configure_twcc;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::room::RoomCmd;

/// GCC's bounds: where it starts, and the floor and ceiling of its estimate (bits/s).
const INITIAL_BPS: f64 = 1_000_000.0;
const MIN_BPS: f64 = 30_000.0;
const MAX_BPS: f64 = 20_000_000.0;

/// What the estimator last said about the path towards one participant.
#[derive(Debug, Default)]
pub(crate) struct DownlinkEstimate {
    target_bps: AtomicU64,
    /// Average loss of the transport-wide CC reports, in parts per million.
    loss_ppm: AtomicU64,
    /// Feedback reports seen (0: the browser sends no transport-wide CC feedback).
    reports: AtomicU64,
}

impl DownlinkEstimate {
    pub(crate) fn target_bps(&self) -> u64 {
        self.target_bps.load(Ordering::Relaxed)
    }

    /// The average loss fraction, `None` before any feedback.
    pub(crate) fn loss(&self) -> Option<f64> {
        (self.reports.load(Ordering::Relaxed) > 0)
            .then(|| self.loss_ppm.load(Ordering::Relaxed) as f64 / 1e6)
    }

    fn publish(&self, target: f64, stats: EstimatorStats) {
        self.target_bps.store(target as u64, Ordering::Relaxed);
        if let Some(loss) = stats.packet_loss {
            self.loss_ppm
                .store((loss.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Relaxed);
        }
    }
}

/// GCC, publishing its estimate where the gate reads it (the estimator itself ends up boxed
/// inside the connection's interceptor chain).
struct PublishingGcc {
    inner: Gcc,
    estimate: Arc<DownlinkEstimate>,
}

impl BandwidthEstimator for PublishingGcc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        if !reports.is_empty() {
            self.estimate.reports.fetch_add(1, Ordering::Relaxed);
        }
        self.estimate
            .publish(self.inner.target_bitrate(), self.inner.stats());
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.estimate
            .publish(self.inner.target_bitrate(), self.inner.stats());
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// Adds transport-wide CC (the header extension and feedback, offered to the browser) and the
/// estimator to a connection's interceptors. Not `configure_congestion_control`: that one also
/// installs a pacer, which would hold forwarded packets to the estimate.
pub(crate) fn register(
    registry: Registry,
    engine: &mut MediaEngine,
    estimate: Arc<DownlinkEstimate>,
) -> rtc::shared::error::Result<Registry> {
    estimate
        .target_bps
        .store(INITIAL_BPS as u64, Ordering::Relaxed);
    let gcc = PublishingGcc {
        inner: Gcc::new(INITIAL_BPS, MIN_BPS, MAX_BPS),
        estimate,
    };
    Ok(configure_twcc(registry, engine)?.with(
        Slot::CongestionControl,
        CongestionControlBuilder::new(gcc).build(),
    ))
}

/// The gate's settings (from `SfuConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateConfig {
    /// Loss fraction above which video is paused.
    pub pause_loss: f64,
    /// How long the loss must stay above it.
    pub pause_after: Duration,
    /// The first wait before video is tried again; doubles after each failed try.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a try lasts before it is judged.
    pub probe: Duration,
}

/// How long a try of paused video lasts before it is judged.
pub(crate) const TRY_LENGTH: Duration = Duration::from_secs(3);

/// What the gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateChange {
    Pause,
    Resume,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum GateState {
    Forwarding { lossy_since: Option<Instant> },
    Paused { until: Instant, backoff: Duration },
    Trying { until: Instant, backoff: Duration },
}

/// Pauses one participant's incoming video while its downlink loses packets.
#[derive(Debug)]
pub(crate) struct VideoGate {
    config: GateConfig,
    state: GateState,
}

impl VideoGate {
    pub(crate) fn new(config: GateConfig) -> Self {
        Self {
            config,
            state: GateState::Forwarding { lossy_since: None },
        }
    }

    #[cfg(test)]
    fn paused(&self) -> bool {
        matches!(self.state, GateState::Paused { .. })
    }

    /// Feeds the latest loss figure (`None`: no feedback yet) at `now`.
    pub(crate) fn observe(&mut self, now: Instant, loss: Option<f64>) -> Option<GateChange> {
        let lossy = loss.is_some_and(|l| l > self.config.pause_loss);
        match self.state {
            GateState::Forwarding { lossy_since } => {
                let since = if lossy {
                    Some(lossy_since.unwrap_or(now))
                } else {
                    None
                };
                if since.is_some_and(|t| now.duration_since(t) >= self.config.pause_after) {
                    let backoff = self.config.first_backoff;
                    self.state = GateState::Paused {
                        until: now + backoff,
                        backoff,
                    };
                    return Some(GateChange::Pause);
                }
                self.state = GateState::Forwarding { lossy_since: since };
                None
            }
            GateState::Paused { until, backoff } => {
                if now < until {
                    return None;
                }
                self.state = GateState::Trying {
                    until: now + self.config.probe,
                    backoff,
                };
                Some(GateChange::Resume)
            }
            GateState::Trying { until, backoff } => {
                if lossy {
                    let backoff = (backoff * 2).min(self.config.max_backoff);
                    self.state = GateState::Paused {
                        until: now + backoff,
                        backoff,
                    };
                    return Some(GateChange::Pause);
                }
                if now >= until {
                    self.state = GateState::Forwarding { lossy_since: None };
                }
                None
            }
        }
    }
}

/// The flag a participant's downlink reads: true while its video is paused.
pub(crate) type VideoPaused = Arc<AtomicBool>;

/// How often the gate looks at the estimate.
const GATE_TICK: Duration = Duration::from_millis(250);

/// Watches one participant's downlink until `cancel`: flips `paused` (read by its downlink for
/// every video packet) and posts each change to the room, which tells the browser and asks
/// for keyframes on resume.
pub(crate) async fn run_gate(
    estimate: Arc<DownlinkEstimate>,
    paused: VideoPaused,
    config: GateConfig,
    room: tokio::sync::mpsc::WeakUnboundedSender<RoomCmd>,
    user: String,
    peer: u64,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut gate = VideoGate::new(config);
    let mut tick = tokio::time::interval(GATE_TICK);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Some(change) = gate.observe(Instant::now(), estimate.loss()) else {
            continue;
        };
        let now_paused = change == GateChange::Pause;
        paused.store(now_paused, Ordering::Relaxed);
        tracing::info!(
            user,
            peer,
            paused = now_paused,
            loss = estimate.loss().unwrap_or(0.0),
            target_bps = estimate.target_bps(),
            "sfu: downlink video gate"
        );
        let Some(room) = room.upgrade() else { break };
        let posted = room.send(RoomCmd::VideoGate {
            user: user.clone(),
            peer,
            paused: now_paused,
        });
        if posted.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GateConfig {
        GateConfig {
            pause_loss: 0.1,
            pause_after: Duration::from_secs(1),
            first_backoff: Duration::from_secs(8),
            max_backoff: Duration::from_secs(60),
            probe: Duration::from_secs(3),
        }
    }

    fn secs(start: Instant, s: f64) -> Instant {
        start + Duration::from_secs_f64(s)
    }

    #[test]
    fn moderate_loss_and_no_feedback_never_pause() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        for i in 0..100 {
            assert_eq!(gate.observe(secs(t0, f64::from(i) * 0.5), Some(0.05)), None);
            assert_eq!(gate.observe(secs(t0, f64::from(i) * 0.5 + 0.1), None), None);
        }
        assert!(!gate.paused());
    }

    #[test]
    fn sustained_loss_pauses_then_tries_again_with_a_growing_backoff() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        assert_eq!(
            gate.observe(t0, Some(0.4)),
            None,
            "one bad report is not enough"
        );
        assert_eq!(gate.observe(secs(t0, 0.5), Some(0.05)), None, "recovered");
        assert_eq!(gate.observe(secs(t0, 1.0), Some(0.4)), None);
        assert_eq!(
            gate.observe(secs(t0, 2.0), Some(0.4)),
            Some(GateChange::Pause)
        );
        assert!(gate.paused());
        assert_eq!(gate.observe(secs(t0, 9.0), Some(0.0)), None, "backing off");
        assert_eq!(
            gate.observe(secs(t0, 10.0), Some(0.0)),
            Some(GateChange::Resume)
        );
        assert!(!gate.paused());
        // The try fails: paused again, for twice as long.
        assert_eq!(
            gate.observe(secs(t0, 11.0), Some(0.5)),
            Some(GateChange::Pause)
        );
        assert_eq!(gate.observe(secs(t0, 26.0), Some(0.0)), None);
        assert_eq!(
            gate.observe(secs(t0, 27.0), Some(0.0)),
            Some(GateChange::Resume)
        );
        // This try holds: back to forwarding, and the next pause starts from the first backoff.
        assert_eq!(gate.observe(secs(t0, 28.0), Some(0.01)), None);
        assert_eq!(gate.observe(secs(t0, 30.5), Some(0.01)), None);
        assert_eq!(gate.observe(secs(t0, 31.0), Some(0.3)), None);
        assert_eq!(
            gate.observe(secs(t0, 32.0), Some(0.3)),
            Some(GateChange::Pause)
        );
        assert_eq!(
            gate.observe(secs(t0, 40.0), Some(0.0)),
            Some(GateChange::Resume)
        );
    }

    #[test]
    fn the_backoff_is_capped() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        let mut now = 0.0;
        gate.observe(secs(t0, now), Some(0.5));
        now += 1.0;
        assert_eq!(
            gate.observe(secs(t0, now), Some(0.5)),
            Some(GateChange::Pause)
        );
        let mut waits = Vec::new();
        for _ in 0..6 {
            let paused_at = now;
            loop {
                now += 0.5;
                if gate.observe(secs(t0, now), Some(0.5)) == Some(GateChange::Resume) {
                    break;
                }
            }
            waits.push(now - paused_at);
            now += 0.5;
            assert_eq!(
                gate.observe(secs(t0, now), Some(0.5)),
                Some(GateChange::Pause)
            );
        }
        assert_eq!(waits, vec![8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
    }
}
