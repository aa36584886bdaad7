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
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
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

/// After a step up holds, how long before the next one is tried.
const STEP_UP_AFTER: Duration = Duration::from_secs(2);

/// After the level changes, how long the loss is not held against the new level: the
/// estimator's loss is an average, and the queue in front of the narrow link drains first.
const SETTLE: Duration = Duration::from_secs(2);

/// The level at which every layer may be forwarded (`DownlinkVideo::level`).
pub(crate) const FULL_LEVEL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum GateState {
    /// At the full level.
    Forwarding { lossy_since: Option<Instant> },
    /// Below it: the next step up is tried at `until`.
    Limited {
        lossy_since: Option<Instant>,
        until: Instant,
        backoff: Duration,
    },
    /// A step up under trial until `until`.
    Trying { until: Instant, backoff: Duration },
}

/// Sets how much video one participant receives from its downlink's loss: every layer
/// (`FULL_LEVEL`), fewer simulcast layers, or none (0, paused). Sustained loss steps down to the
/// lowest layer when a leg gets a higher one, else pauses; later, one level at a time is tried
/// again, and a try that brings the loss back doubles the wait before the next.
#[derive(Debug)]
pub(crate) struct VideoGate {
    config: GateConfig,
    state: GateState,
    level: u8,
    settle_until: Option<Instant>,
}

impl VideoGate {
    pub(crate) fn new(config: GateConfig) -> Self {
        Self {
            config,
            state: GateState::Forwarding { lossy_since: None },
            level: FULL_LEVEL,
            settle_until: None,
        }
    }

    /// Feeds the latest loss figure (`None`: no feedback yet) at `now`; `above_low`: some leg
    /// towards this participant forwards a simulcast layer above the lowest. Returns the new
    /// level when it changes.
    /// `room_up`: the estimate leaves room for the next simulcast layer (a try from a pause
    /// does not ask).
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        loss: Option<f64>,
        above_low: bool,
        room_up: bool,
    ) -> Option<u8> {
        let before = self.level;
        let change = self.step(now, loss, above_low, room_up);
        if self.level != before {
            self.settle_until = Some(now + SETTLE);
        }
        change
    }

    fn step(
        &mut self,
        now: Instant,
        loss: Option<f64>,
        above_low: bool,
        room_up: bool,
    ) -> Option<u8> {
        let lossy = loss.is_some_and(|l| l > self.config.pause_loss);
        let settled = self.settle_until.is_none_or(|t| now >= t);
        match self.state {
            GateState::Forwarding { lossy_since } | GateState::Limited { lossy_since, .. } => {
                let (until, backoff) = match self.state {
                    GateState::Limited { until, backoff, .. } => (Some(until), backoff),
                    _ => (None, self.config.first_backoff),
                };
                // Paused: nothing left to shed, the try comes when it is due.
                let since =
                    (lossy && settled && self.level > 0).then(|| lossy_since.unwrap_or(now));
                if since.is_some_and(|t| now.duration_since(t) >= self.config.pause_after) {
                    self.level = if self.level >= 2 && above_low { 1 } else { 0 };
                    self.state = GateState::Limited {
                        lossy_since: None,
                        until: now + backoff,
                        backoff,
                    };
                    return Some(self.level);
                }
                if let Some(until) = until {
                    if now >= until && self.level < FULL_LEVEL && (self.level == 0 || room_up) {
                        self.level += 1;
                        self.state = GateState::Trying {
                            until: now + self.config.probe,
                            backoff,
                        };
                        return Some(self.level);
                    }
                    self.state = GateState::Limited {
                        lossy_since: since,
                        until,
                        backoff,
                    };
                } else {
                    self.state = GateState::Forwarding { lossy_since: since };
                }
                None
            }
            GateState::Trying { until, backoff } => {
                if lossy {
                    let backoff = (backoff * 2).min(self.config.max_backoff);
                    self.level -= 1;
                    self.state = GateState::Limited {
                        lossy_since: None,
                        until: now + backoff,
                        backoff,
                    };
                    return Some(self.level);
                }
                if now >= until {
                    self.state = if self.level >= FULL_LEVEL {
                        GateState::Forwarding { lossy_since: None }
                    } else {
                        GateState::Limited {
                            lossy_since: None,
                            until: now + STEP_UP_AFTER,
                            backoff: self.config.first_backoff,
                        }
                    };
                }
                None
            }
        }
    }
}

/// What one participant's downlink may carry of video, shared by its gate (which sets it), its
/// downlink (which drops video at level 0) and the forwarders of the video it receives (which
/// choose each leg's simulcast layer below it and count the legs above the lowest layer).
#[derive(Debug)]
pub(crate) struct DownlinkVideo {
    level: AtomicU8,
    legs_above_low: AtomicU32,
    /// What raising every leg one simulcast layer would add, bits/s (kept by the forwarders).
    step_up_bps: AtomicU64,
    /// Bytes written to the participant's connection (its downlink counts them).
    sent_bytes: AtomicU64,
}

impl Default for DownlinkVideo {
    fn default() -> Self {
        Self {
            level: AtomicU8::new(FULL_LEVEL),
            legs_above_low: AtomicU32::new(0),
            step_up_bps: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
        }
    }
}

impl DownlinkVideo {
    pub(crate) fn level(&self) -> u8 {
        self.level.load(Ordering::Relaxed)
    }

    pub(crate) fn paused(&self) -> bool {
        self.level() == 0
    }

    /// A leg's layer went above the lowest (`true`) or back (`false`).
    pub(crate) fn leg_above_low(&self, above: bool) {
        if above {
            self.legs_above_low.fetch_add(1, Ordering::Relaxed);
        } else {
            self.legs_above_low.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A leg's share of `step_up_bps` changed from `before` to `after`.
    pub(crate) fn step_up_share(&self, before: u64, after: u64) {
        if after > before {
            self.step_up_bps
                .fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.step_up_bps
                .fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    pub(crate) fn count_sent(&self, bytes: u64) {
        self.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn any_above_low(&self) -> bool {
        self.legs_above_low.load(Ordering::Relaxed) > 0
    }
}

/// What a participant's connection sends, bits/s over the last second or so.
#[derive(Debug, Default)]
struct SendRate {
    since: Option<(Instant, u64)>,
    bps: u64,
}

impl SendRate {
    fn sample(&mut self, now: Instant, bytes: u64) -> u64 {
        match self.since {
            Some((at, then)) => {
                let elapsed = now.duration_since(at);
                if elapsed >= Duration::from_secs(1) {
                    self.bps =
                        (bytes.saturating_sub(then) as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
                    self.since = Some((now, bytes));
                }
            }
            None => self.since = Some((now, bytes)),
        }
        self.bps
    }
}

/// How often the gate looks at the estimate.
const GATE_TICK: Duration = Duration::from_millis(250);

/// Watches one participant's downlink until `cancel`: sets its video level (read by its
/// downlink and the forwarders for every video packet) and posts each pause and resume to the
/// room, which tells the browser and asks for keyframes on resume.
pub(crate) async fn run_gate(
    estimate: Arc<DownlinkEstimate>,
    video: Arc<DownlinkVideo>,
    config: GateConfig,
    room: tokio::sync::mpsc::WeakUnboundedSender<RoomCmd>,
    user: String,
    peer: u64,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut gate = VideoGate::new(config);
    let mut tick = tokio::time::interval(GATE_TICK);
    let mut rate = SendRate::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let sent_bps = rate.sample(now, video.sent_bytes.load(Ordering::Relaxed));
        // A step up is tried when the estimate carries what is sent now plus what the next
        // layers add, with a tenth to spare.
        let wanted = sent_bps + video.step_up_bps.load(Ordering::Relaxed);
        let room_up = estimate.target_bps() as f64 >= wanted as f64 * 1.1;
        let before = video.level();
        let Some(level) = gate.observe(now, estimate.loss(), video.any_above_low(), room_up) else {
            continue;
        };
        video.level.store(level, Ordering::Relaxed);
        tracing::info!(
            user,
            peer,
            level,
            paused = level == 0,
            loss = estimate.loss().unwrap_or(0.0),
            target_bps = estimate.target_bps(),
            sent_bps,
            step_up_bps = video.step_up_bps.load(Ordering::Relaxed),
            "sfu: downlink video gate"
        );
        if (level == 0) == (before == 0) {
            continue;
        }
        let Some(room) = room.upgrade() else { break };
        let posted = room.send(RoomCmd::VideoGate {
            user: user.clone(),
            peer,
            paused: level == 0,
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
            assert_eq!(
                gate.observe(secs(t0, f64::from(i) * 0.5), Some(0.05), false, true),
                None
            );
            assert_eq!(
                gate.observe(secs(t0, f64::from(i) * 0.5 + 0.1), None, false, true),
                None
            );
        }
        assert_ne!(gate.level, 0);
    }

    #[test]
    fn sustained_loss_pauses_then_tries_again_with_a_growing_backoff() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        assert_eq!(
            gate.observe(t0, Some(0.4), false, true),
            None,
            "one bad report is not enough"
        );
        assert_eq!(
            gate.observe(secs(t0, 0.5), Some(0.05), false, true),
            None,
            "recovered"
        );
        assert_eq!(gate.observe(secs(t0, 1.0), Some(0.4), false, true), None);
        assert_eq!(gate.observe(secs(t0, 2.0), Some(0.4), false, true), Some(0));
        assert_eq!(gate.level, 0);
        assert_eq!(
            gate.observe(secs(t0, 9.0), Some(0.0), false, true),
            None,
            "backing off"
        );
        assert_eq!(
            gate.observe(secs(t0, 10.0), Some(0.0), false, true),
            Some(1)
        );
        assert_ne!(gate.level, 0);
        // The try fails: paused again, for twice as long.
        assert_eq!(
            gate.observe(secs(t0, 11.0), Some(0.5), false, true),
            Some(0)
        );
        assert_eq!(gate.observe(secs(t0, 26.0), Some(0.0), false, true), None);
        assert_eq!(
            gate.observe(secs(t0, 27.0), Some(0.0), false, true),
            Some(1)
        );
        // This try holds: back to forwarding, and the next pause starts from the first backoff.
        assert_eq!(gate.observe(secs(t0, 28.0), Some(0.01), false, true), None);
        assert_eq!(gate.observe(secs(t0, 30.5), Some(0.01), false, true), None);
        assert_eq!(gate.observe(secs(t0, 31.0), Some(0.3), false, true), None);
        assert_eq!(
            gate.observe(secs(t0, 32.0), Some(0.3), false, true),
            Some(0)
        );
        assert_eq!(
            gate.observe(secs(t0, 40.0), Some(0.0), false, true),
            Some(1)
        );
    }

    #[test]
    fn simulcast_steps_down_to_the_lowest_layer_before_pausing_and_climbs_back() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        assert_eq!(gate.observe(t0, Some(0.4), true, true), None);
        assert_eq!(
            gate.observe(secs(t0, 1.0), Some(0.4), true, true),
            Some(1),
            "the lowest layer first"
        );
        assert_eq!(
            gate.observe(secs(t0, 2.5), Some(0.4), false, true),
            None,
            "the loss of before is not held against the new level for 2 s"
        );
        assert_eq!(gate.observe(secs(t0, 3.0), Some(0.4), false, true), None);
        assert_eq!(
            gate.observe(secs(t0, 4.0), Some(0.4), false, true),
            Some(0),
            "still lossy on the lowest layer: paused"
        );
        assert_eq!(gate.observe(secs(t0, 11.5), Some(0.0), false, true), None);
        assert_eq!(
            gate.observe(secs(t0, 12.0), Some(0.0), false, true),
            Some(1)
        );
        assert_eq!(gate.observe(secs(t0, 15.0), Some(0.0), true, true), None);
        assert_eq!(gate.observe(secs(t0, 17.0), Some(0.0), true, true), Some(2));
        // A failed step goes back one level and waits twice as long.
        assert_eq!(gate.observe(secs(t0, 17.5), Some(0.3), true, true), Some(1));
        assert_eq!(gate.observe(secs(t0, 33.0), Some(0.0), true, true), None);
        assert_eq!(gate.observe(secs(t0, 33.5), Some(0.0), true, true), Some(2));
        assert_eq!(gate.observe(secs(t0, 36.5), Some(0.0), true, true), None);
        assert_eq!(gate.observe(secs(t0, 38.5), Some(0.0), true, true), Some(3));
        assert_eq!(gate.observe(secs(t0, 41.5), Some(0.0), true, true), None);
        assert_eq!(gate.level, FULL_LEVEL);
        assert!(matches!(gate.state, GateState::Forwarding { .. }));
    }

    #[test]
    fn a_layer_is_tried_only_when_the_estimate_has_room_for_it() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        gate.observe(t0, Some(0.5), true, true);
        assert_eq!(gate.observe(secs(t0, 1.0), Some(0.5), true, true), Some(1));
        // The back-off is over, but the estimate cannot carry the next layer: no try.
        for i in 0..40 {
            let at = 9.0 + f64::from(i) * 0.5;
            assert_eq!(gate.observe(secs(t0, at), Some(0.0), true, false), None);
        }
        assert_eq!(gate.observe(secs(t0, 29.5), Some(0.0), true, true), Some(2));
        // A try out of a pause is made whatever the estimate says.
        assert_eq!(
            gate.observe(secs(t0, 30.0), Some(0.5), true, false),
            Some(1)
        );
    }

    #[test]
    fn the_backoff_is_capped() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        let mut now = 0.0;
        gate.observe(secs(t0, now), Some(0.5), false, true);
        now += 1.0;
        assert_eq!(gate.observe(secs(t0, now), Some(0.5), false, true), Some(0));
        let mut waits = Vec::new();
        for _ in 0..6 {
            let paused_at = now;
            loop {
                now += 0.5;
                if gate.observe(secs(t0, now), Some(0.5), false, true) == Some(1) {
                    break;
                }
            }
            waits.push(now - paused_at);
            now += 0.5;
            assert_eq!(gate.observe(secs(t0, now), Some(0.5), false, true), Some(0));
        }
        assert_eq!(waits, vec![8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
    }
}
