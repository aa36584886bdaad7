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
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// What the path towards a participant is known to carry, for a step up to the next simulcast
/// layer (`VideoGate::observe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Headroom {
    /// Not even by the estimate.
    None,
    /// By GCC's estimate only. While the connection sends less than the estimate, nothing
    /// checks the estimate: GCC keeps raising it (by 8 % a second, or 60 kbit/s near the rate
    /// at which it last backed off), so after a few seconds on a 300 kbit/s link it says
    /// 500 kbit/s.
    Estimated,
    /// By the estimate, and within 1.5 × what the path delivers now (libwebrtc's bound on an
    /// estimate while the sender sends less than it).
    Delivered,
}

/// The delivered rate times this, plus `DELIVERED_SLACK_BPS`, bounds a vouched estimate.
const DELIVERED_FACTOR: f64 = 1.5;
const DELIVERED_SLACK_BPS: f64 = 10_000.0;

impl Headroom {
    /// `wanted`: what the connection would send after the step (bits/s), with a tenth to
    /// spare; `sent`: what it sends now and `loss` the share of it lost.
    pub(crate) fn of(target_bps: u64, sent_bps: u64, loss: f64, wanted_bps: u64) -> Self {
        let wanted = wanted_bps as f64 * 1.1;
        let target = target_bps as f64;
        let delivered = sent_bps as f64 * (1.0 - loss.clamp(0.0, 1.0));
        if target < wanted {
            Headroom::None
        } else if target.min(delivered * DELIVERED_FACTOR + DELIVERED_SLACK_BPS) >= wanted {
            Headroom::Delivered
        } else {
            Headroom::Estimated
        }
    }
}

/// After the level changes, how long the loss is not held against the new level: the
/// estimator's loss is an average, and the queue in front of the narrow link drains first.
const SETTLE: Duration = Duration::from_secs(2);

/// The level at which every layer may be forwarded (`DownlinkVideo::level`).
pub(crate) const FULL_LEVEL: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum GateState {
    /// At the full level.
    Forwarding { lossy_since: Option<Instant> },
    /// Below it: the next step up is tried at `until`, or at `blind_until` when only the
    /// estimate has room for it (`Headroom::Estimated`).
    Limited {
        lossy_since: Option<Instant>,
        until: Instant,
        blind_until: Instant,
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
    /// `room`: what is known of the room for the next simulcast layer (a try from a pause
    /// does not ask). A step the delivered rate vouches for is tried once the back-off has
    /// passed; one only the estimate has room for, not before `max_backoff` after a step down
    /// (the estimate may have grown unchecked, and the try of a layer the link cannot carry
    /// costs the voice a burst of loss). After a step up held, the next is tried on the
    /// estimate.
    pub(crate) fn observe(
        &mut self,
        now: Instant,
        loss: Option<f64>,
        above_low: bool,
        room: Headroom,
    ) -> Option<u8> {
        let before = self.level;
        let change = self.step(now, loss, above_low, room);
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
        room: Headroom,
    ) -> Option<u8> {
        let lossy = loss.is_some_and(|l| l > self.config.pause_loss);
        let settled = self.settle_until.is_none_or(|t| now >= t);
        match self.state {
            GateState::Forwarding { lossy_since } | GateState::Limited { lossy_since, .. } => {
                let (until, blind_until, backoff) = match self.state {
                    GateState::Limited {
                        until,
                        blind_until,
                        backoff,
                        ..
                    } => (Some(until), blind_until, backoff),
                    _ => (None, now, self.config.first_backoff),
                };
                // Paused: nothing left to shed, the try comes when it is due.
                let since =
                    (lossy && settled && self.level > 0).then(|| lossy_since.unwrap_or(now));
                if since.is_some_and(|t| now.duration_since(t) >= self.config.pause_after) {
                    self.level = if self.level >= 2 && above_low { 1 } else { 0 };
                    self.state = GateState::Limited {
                        lossy_since: None,
                        until: now + backoff,
                        blind_until: now + backoff.max(self.config.max_backoff),
                        backoff,
                    };
                    return Some(self.level);
                }
                if let Some(until) = until {
                    let room_up = match room {
                        Headroom::Delivered => true,
                        Headroom::Estimated => now >= blind_until,
                        Headroom::None => false,
                    };
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
                        blind_until,
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
                        blind_until: now + backoff,
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
                            blind_until: now + STEP_UP_AFTER,
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
    /// What answers to its NACKs may still send (set by its gate from the estimate).
    resend: Mutex<ResendBudget>,
}

impl Default for DownlinkVideo {
    fn default() -> Self {
        Self {
            level: AtomicU8::new(FULL_LEVEL),
            legs_above_low: AtomicU32::new(0),
            step_up_bps: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            resend: Mutex::new(ResendBudget::default()),
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

    /// Whether a resend of `bytes` fits what the path leaves after the media; counts it if so.
    pub(crate) fn take_resend(&self, now: Instant, bytes: u64) -> bool {
        self.resend_budget().take(now, bytes)
    }

    fn resend_budget(&self) -> std::sync::MutexGuard<'_, ResendBudget> {
        self.resend
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn any_above_low(&self) -> bool {
        self.legs_above_low.load(Ordering::Relaxed) > 0
    }
}

/// How much the answers to one participant's NACKs may send while its downlink is congested
/// (its loss above the gate's `pause_loss`): a token bucket refilled at what the estimate
/// leaves after the media. Without the bound, a downlink that loses packets because it is
/// full asks for them again and the SFU sends them: on a 300 kbit/s link that was 3.3 Mbit/s
/// sent, the voice and the next keyframe lost in the queue. Below that loss there is no bound
/// (the leg's `ResendLimiter` still applies): random loss of a few per cent holds GCC's
/// loss-based target where it is (1 Mbit/s from the start), and bounded by it the resends of
/// a 0.9 Mbit/s stream at 5 % loss repaired too little (1.7 % of the video lost after repair,
/// 0.4 frames a second instead of 1.5).
#[derive(Debug, Default)]
struct ResendBudget {
    /// bits/s; `None`: no bound.
    rate_bps: Option<u64>,
    tokens: f64,
    refilled: Option<Instant>,
    /// Bytes resent, for the gate's rate of them.
    resent_bytes: u64,
}

/// The bucket holds this long of its rate at most.
const RESEND_BURST: Duration = Duration::from_millis(250);

impl ResendBudget {
    /// Bounds the resends to `rate_bps`, or lifts the bound (`None`). A new bound starts with
    /// a full bucket.
    fn set_rate(&mut self, now: Instant, rate_bps: Option<u64>) {
        self.refill(now);
        if let Some(rate) = rate_bps {
            let capacity = Self::capacity(rate);
            self.tokens = if self.rate_bps.is_none() {
                capacity
            } else {
                self.tokens.min(capacity)
            };
        }
        self.rate_bps = rate_bps;
    }

    fn capacity(rate_bps: u64) -> f64 {
        rate_bps as f64 / 8.0 * RESEND_BURST.as_secs_f64()
    }

    fn refill(&mut self, now: Instant) {
        if let (Some(rate), Some(at)) = (self.rate_bps, self.refilled) {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            self.tokens = (self.tokens + rate as f64 / 8.0 * elapsed).min(Self::capacity(rate));
        }
        self.refilled = Some(now);
    }

    fn take(&mut self, now: Instant, bytes: u64) -> bool {
        if self.rate_bps.is_some() {
            self.refill(now);
            if self.tokens < bytes as f64 {
                return false;
            }
            self.tokens -= bytes as f64;
        }
        self.resent_bytes += bytes;
        true
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
    let mut resent = SendRate::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let sent_bps = rate.sample(now, video.sent_bytes.load(Ordering::Relaxed));
        let (loss, target_bps) = (estimate.loss(), estimate.target_bps());
        {
            // Congested: what the estimate leaves after the media (resends are counted in
            // `sent_bps`).
            let mut budget = video.resend_budget();
            let media_bps = sent_bps.saturating_sub(resent.sample(now, budget.resent_bytes));
            let congested = loss.is_some_and(|l| l > config.pause_loss);
            budget.set_rate(
                now,
                congested.then_some(target_bps.saturating_sub(media_bps)),
            );
        }
        // A step up needs room for what is sent now plus what the next layers add.
        let wanted = sent_bps + video.step_up_bps.load(Ordering::Relaxed);
        let headroom = Headroom::of(target_bps, sent_bps, loss.unwrap_or(0.0), wanted);
        let before = video.level();
        let Some(level) = gate.observe(now, loss, video.any_above_low(), headroom) else {
            continue;
        };
        video.level.store(level, Ordering::Relaxed);
        tracing::info!(
            user,
            peer,
            level,
            paused = level == 0,
            loss = loss.unwrap_or(0.0),
            target_bps,
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
                gate.observe(
                    secs(t0, f64::from(i) * 0.5),
                    Some(0.05),
                    false,
                    Headroom::Delivered
                ),
                None
            );
            assert_eq!(
                gate.observe(
                    secs(t0, f64::from(i) * 0.5 + 0.1),
                    None,
                    false,
                    Headroom::Delivered
                ),
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
            gate.observe(t0, Some(0.4), false, Headroom::Delivered),
            None,
            "one bad report is not enough"
        );
        assert_eq!(
            gate.observe(secs(t0, 0.5), Some(0.05), false, Headroom::Delivered),
            None,
            "recovered"
        );
        assert_eq!(
            gate.observe(secs(t0, 1.0), Some(0.4), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 2.0), Some(0.4), false, Headroom::Delivered),
            Some(0)
        );
        assert_eq!(gate.level, 0);
        assert_eq!(
            gate.observe(secs(t0, 9.0), Some(0.0), false, Headroom::Delivered),
            None,
            "backing off"
        );
        assert_eq!(
            gate.observe(secs(t0, 10.0), Some(0.0), false, Headroom::Delivered),
            Some(1)
        );
        assert_ne!(gate.level, 0);
        // The try fails: paused again, for twice as long.
        assert_eq!(
            gate.observe(secs(t0, 11.0), Some(0.5), false, Headroom::Delivered),
            Some(0)
        );
        assert_eq!(
            gate.observe(secs(t0, 26.0), Some(0.0), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 27.0), Some(0.0), false, Headroom::Delivered),
            Some(1)
        );
        // This try holds: back to forwarding, and the next pause starts from the first backoff.
        assert_eq!(
            gate.observe(secs(t0, 28.0), Some(0.01), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 30.5), Some(0.01), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 31.0), Some(0.3), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 32.0), Some(0.3), false, Headroom::Delivered),
            Some(0)
        );
        assert_eq!(
            gate.observe(secs(t0, 40.0), Some(0.0), false, Headroom::Delivered),
            Some(1)
        );
    }

    #[test]
    fn simulcast_steps_down_to_the_lowest_layer_before_pausing_and_climbs_back() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        assert_eq!(gate.observe(t0, Some(0.4), true, Headroom::Delivered), None);
        assert_eq!(
            gate.observe(secs(t0, 1.0), Some(0.4), true, Headroom::Delivered),
            Some(1),
            "the lowest layer first"
        );
        assert_eq!(
            gate.observe(secs(t0, 2.5), Some(0.4), false, Headroom::Delivered),
            None,
            "the loss of before is not held against the new level for 2 s"
        );
        assert_eq!(
            gate.observe(secs(t0, 3.0), Some(0.4), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 4.0), Some(0.4), false, Headroom::Delivered),
            Some(0),
            "still lossy on the lowest layer: paused"
        );
        assert_eq!(
            gate.observe(secs(t0, 11.5), Some(0.0), false, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 12.0), Some(0.0), false, Headroom::Delivered),
            Some(1)
        );
        assert_eq!(
            gate.observe(secs(t0, 15.0), Some(0.0), true, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 17.0), Some(0.0), true, Headroom::Delivered),
            Some(2)
        );
        // A failed step goes back one level and waits twice as long.
        assert_eq!(
            gate.observe(secs(t0, 17.5), Some(0.3), true, Headroom::Delivered),
            Some(1)
        );
        assert_eq!(
            gate.observe(secs(t0, 33.0), Some(0.0), true, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 33.5), Some(0.0), true, Headroom::Delivered),
            Some(2)
        );
        assert_eq!(
            gate.observe(secs(t0, 36.5), Some(0.0), true, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 38.5), Some(0.0), true, Headroom::Delivered),
            Some(3)
        );
        assert_eq!(
            gate.observe(secs(t0, 41.5), Some(0.0), true, Headroom::Delivered),
            None
        );
        assert_eq!(gate.level, FULL_LEVEL);
        assert!(matches!(gate.state, GateState::Forwarding { .. }));
    }

    #[test]
    fn a_layer_is_tried_only_when_the_estimate_has_room_for_it() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        gate.observe(t0, Some(0.5), true, Headroom::Delivered);
        assert_eq!(
            gate.observe(secs(t0, 1.0), Some(0.5), true, Headroom::Delivered),
            Some(1)
        );
        // The back-off is over, but the estimate cannot carry the next layer: no try.
        for i in 0..40 {
            let at = 9.0 + f64::from(i) * 0.5;
            assert_eq!(
                gate.observe(secs(t0, at), Some(0.0), true, Headroom::None),
                None
            );
        }
        assert_eq!(
            gate.observe(secs(t0, 29.5), Some(0.0), true, Headroom::Delivered),
            Some(2)
        );
        // A try out of a pause is made whatever the estimate says.
        assert_eq!(
            gate.observe(secs(t0, 30.0), Some(0.5), true, Headroom::None),
            Some(1)
        );
    }

    #[test]
    fn headroom_is_vouched_by_what_the_path_delivers() {
        // A 300 kbit/s link on the low layer (about 170 kbit/s sent with the voice): GCC,
        // unchecked, says 486 kbit/s, the high layer adds 259 kbit/s.
        assert_eq!(
            Headroom::of(486_000, 170_000, 0.0, 429_000),
            Headroom::Estimated
        );
        assert_eq!(Headroom::of(400_000, 170_000, 0.0, 429_000), Headroom::None);
        // Sending near the next step's rate: the estimate is checked by what arrives.
        assert_eq!(
            Headroom::of(2_000_000, 1_000_000, 0.0, 1_200_000),
            Headroom::Delivered
        );
        // What is lost is not delivered.
        assert_eq!(
            Headroom::of(2_000_000, 1_000_000, 0.3, 1_200_000),
            Headroom::Estimated
        );
    }

    #[test]
    fn a_step_only_the_estimate_has_room_for_waits_for_the_longest_backoff() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        gate.observe(t0, Some(0.5), true, Headroom::Estimated);
        assert_eq!(
            gate.observe(secs(t0, 1.0), Some(0.5), true, Headroom::Estimated),
            Some(1)
        );
        // The back-off (8 s) is over, the estimate has room, but nothing vouches for it.
        for i in 0..104 {
            let at = 9.0 + f64::from(i) * 0.5;
            assert_eq!(
                gate.observe(secs(t0, at), Some(0.0), true, Headroom::Estimated),
                None,
                "at {at} s"
            );
        }
        // 60 s (the longest back-off) after the step down.
        assert_eq!(
            gate.observe(secs(t0, 61.0), Some(0.0), true, Headroom::Estimated),
            Some(2)
        );
        // That step held: the next is tried on the estimate 2 s after it.
        assert_eq!(
            gate.observe(secs(t0, 64.0), Some(0.0), true, Headroom::Estimated),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 66.0), Some(0.0), true, Headroom::Estimated),
            Some(3)
        );
        assert_eq!(
            gate.observe(secs(t0, 70.0), Some(0.0), true, Headroom::Estimated),
            None
        );
        assert!(matches!(gate.state, GateState::Forwarding { .. }));
        // A step down again, this time the delivered rate vouches at the back-off.
        gate.observe(secs(t0, 71.0), Some(0.5), true, Headroom::Estimated);
        assert_eq!(
            gate.observe(secs(t0, 72.0), Some(0.5), true, Headroom::Estimated),
            Some(1)
        );
        assert_eq!(
            gate.observe(secs(t0, 79.5), Some(0.0), true, Headroom::Delivered),
            None
        );
        assert_eq!(
            gate.observe(secs(t0, 80.0), Some(0.0), true, Headroom::Delivered),
            Some(2)
        );
    }

    #[test]
    fn congested_resends_fit_what_the_estimate_leaves_after_the_media() {
        let t0 = Instant::now();
        let video = DownlinkVideo::default();
        // Not congested: no bound.
        assert!((0..1000).all(|_| video.take_resend(t0, 1200)));
        // 96 kbit/s left: a burst of 250 ms of it (3 000 bytes), then 12 000 bytes a second.
        video.resend_budget().set_rate(t0, Some(96_000));
        assert!(video.take_resend(t0, 1200), "the first bound starts full");
        assert!(video.take_resend(t0, 1200));
        assert!(!video.take_resend(t0, 1200), "3 000 bytes at most at once");
        let later = t0 + Duration::from_millis(100);
        assert!(
            video.take_resend(later, 1200),
            "refilled: 1 200 bytes in 100 ms"
        );
        assert!(!video.take_resend(later, 1200));
        // The path is full: nothing is resent.
        video.resend_budget().set_rate(later, Some(0));
        assert!(!video.take_resend(later + Duration::from_secs(1), 100));
        // The congestion is over: no bound again.
        video
            .resend_budget()
            .set_rate(later + Duration::from_secs(2), None);
        assert!(video.take_resend(later + Duration::from_secs(2), 1200));
        assert_eq!(video.resend_budget().resent_bytes, 1004 * 1200);
    }

    #[test]
    fn the_backoff_is_capped() {
        let t0 = Instant::now();
        let mut gate = VideoGate::new(config());
        let mut now = 0.0;
        gate.observe(secs(t0, now), Some(0.5), false, Headroom::Delivered);
        now += 1.0;
        assert_eq!(
            gate.observe(secs(t0, now), Some(0.5), false, Headroom::Delivered),
            Some(0)
        );
        let mut waits = Vec::new();
        for _ in 0..6 {
            let paused_at = now;
            loop {
                now += 0.5;
                if gate.observe(secs(t0, now), Some(0.5), false, Headroom::Delivered) == Some(1) {
                    break;
                }
            }
            waits.push(now - paused_at);
            now += 0.5;
            assert_eq!(
                gate.observe(secs(t0, now), Some(0.5), false, Headroom::Delivered),
                Some(0)
            );
        }
        assert_eq!(waits, vec![8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
    }
}
