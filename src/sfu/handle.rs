//! The SFU's public face: [`Sfu`] owns the SFU's threads (its shards, one room on one thread:
//! src/sfu/shards.rs); [`SfuHandle`] is the cheap cloneable way in. Its async methods only
//! send a command to the room's owner task and await the reply, so they work from any runtime
//! (actix workers included).

use super::config::{IceServer, SfuConfig};
use super::error::SfuError;
use super::mux::UdpMux;
use super::ports::PortPool;
use super::probe::{ProbeAnswer, ProbeRegistry, ProbeTransport, live_probes, start_probe};
use super::room::{Reply, RoomCmd, RoomEntry, SfuShared, spawn_room};
use super::shards::Shards;
use super::signal::{ClientSignal, CloseReason, MediaKind, SfuEvent};
use super::stats::{SfuMetrics, SfuStats};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How a participant joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinOptions {
    /// The client will send an `sfu:offer` with its microphone/camera. The server then waits
    /// for that offer before sending offers of its own (so the two never collide). A
    /// receive-only client passes `false` and gets a server offer as soon as there is media.
    pub publish: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self { publish: true }
    }
}

/// Why the SFU could not start.
#[derive(Debug, thiserror::Error)]
pub enum SfuStartError {
    /// The configuration is inconsistent.
    #[error("invalid SFU configuration: {0}")]
    Config(String),
    /// A thread, its runtime or the single UDP port could not be created.
    #[error("SFU runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The running SFU. Dropping it stops every room and its threads.
pub struct Sfu {
    handle: SfuHandle,
}

/// Cheap cloneable access to the SFU from any thread or runtime.
#[derive(Clone)]
pub struct SfuHandle {
    shared: SfuShared,
    shards: Shards,
}

impl Sfu {
    /// Starts the SFU on `worker_threads` threads of its own.
    pub fn start(config: SfuConfig) -> Result<Self, SfuStartError> {
        config.validate().map_err(SfuStartError::Config)?;
        let shards = Shards::start(config.worker_threads)?;
        let cancel = CancellationToken::new();
        let mux = match config.single_udp_port {
            Some(port) => {
                let _enter = shards.first().enter();
                let mux = UdpMux::bind(std::net::SocketAddr::new(config.bind_ip, port))
                    .inspect_err(|_| shards.stop())?;
                shards.first().spawn(Arc::clone(&mux).run(cancel.clone()));
                Some(mux)
            }
            None => None,
        };
        let shared = SfuShared {
            mux,
            ports: PortPool::new(config.udp_port_min, config.udp_port_max),
            config: Arc::new(config),
            metrics: Arc::new(SfuMetrics::default()),
            rooms: Arc::new(Mutex::new(HashMap::new())),
            cancel,
            probes: ProbeRegistry::default(),
        };
        let handle = SfuHandle { shared, shards };
        tracing::info!(
            ports = %format!("{}-{}", handle.shared.config.udp_port_min, handle.shared.config.udp_port_max),
            "sfu: started"
        );
        Ok(Self { handle })
    }

    /// A handle to give to the gateway.
    pub fn handle(&self) -> SfuHandle {
        self.handle.clone()
    }

    /// Closes every participant (they get `Closed(Shutdown)`), waits up to two seconds for
    /// rooms to finish, then stops the threads.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.handle.shared.cancel.cancel();
        // Never blocks, so dropping the SFU inside an async context is fine.
        self.handle.shards.stop();
    }
}

impl SfuHandle {
    async fn call<T>(
        &self,
        room_id: &str,
        command: impl FnOnce(Reply<T>) -> RoomCmd,
    ) -> Result<T, SfuError> {
        if self.shared.cancel.is_cancelled() {
            return Err(SfuError::ShuttingDown);
        }
        let commands = self
            .shared
            .rooms
            .lock()
            .map_err(|_| SfuError::Internal)?
            .get(room_id)
            .map(|entry| entry.commands.clone())
            .ok_or(SfuError::UnknownRoom)?;
        let (reply, answer) = oneshot::channel();
        commands
            .send(command(reply))
            .map_err(|_| SfuError::UnknownRoom)?;
        answer.await.map_err(|_| SfuError::UnknownRoom)?
    }

    /// Adds `user_id` to `room_id` (creating the room on first join) with a fresh server-side
    /// peer connection. Everything the SFU wants to tell this participant arrives on `events`.
    pub async fn join(
        &self,
        room_id: &str,
        user_id: &str,
        options: JoinOptions,
        events: mpsc::UnboundedSender<SfuEvent>,
    ) -> Result<(), SfuError> {
        // A room that just emptied may still be registered for an instant; it answers
        // `UnknownRoom` and the next attempt creates a fresh one.
        for _ in 0..3 {
            if self.shared.cancel.is_cancelled() {
                return Err(SfuError::ShuttingDown);
            }
            let commands = {
                let mut rooms = self.shared.rooms.lock().map_err(|_| SfuError::Internal)?;
                match rooms.get(room_id) {
                    Some(entry) if !entry.commands.is_closed() => entry.commands.clone(),
                    _ => {
                        let id = self.shared.metrics.next_id();
                        let (shard, placement) = self.shards.place_room();
                        let _enter = shard.enter();
                        let commands =
                            spawn_room(room_id.to_owned(), id, self.shared.clone(), placement);
                        rooms.insert(
                            room_id.to_owned(),
                            RoomEntry {
                                id,
                                commands: commands.clone(),
                            },
                        );
                        commands
                    }
                }
            };
            let (reply, answer) = oneshot::channel();
            let sent = commands.send(RoomCmd::Join {
                user: user_id.to_owned(),
                publish: options.publish,
                events: events.clone(),
                reply,
            });
            if sent.is_err() {
                continue;
            }
            match answer.await {
                Ok(Err(SfuError::UnknownRoom)) | Err(_) => continue,
                Ok(result) => return result,
            }
        }
        Err(SfuError::Internal)
    }

    /// Hands a client signaling message to the participant's connection.
    pub async fn signal(
        &self,
        room_id: &str,
        user_id: &str,
        signal: ClientSignal,
    ) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::Signal {
            user,
            signal,
            reply,
        })
        .await
    }

    /// Stops (or resumes) forwarding the participant's microphone or camera to everyone,
    /// without renegotiation. Resuming video requests a keyframe.
    pub async fn set_muted(
        &self,
        room_id: &str,
        user_id: &str,
        kind: MediaKind,
        muted: bool,
    ) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::SetMuted {
            user,
            kind,
            muted,
            reply,
        })
        .await
    }

    /// Audio-only for `user` as a subscriber: `false` stops forwarding every video track to
    /// them (their link carries audio alone), `true` resumes it with a fresh keyframe. What
    /// the others receive, and what `user` publishes, is unchanged; nothing is renegotiated.
    pub async fn set_receive_video(
        &self,
        room_id: &str,
        user_id: &str,
        video: bool,
    ) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::SetReceiveVideo {
            user,
            video,
            reply,
        })
        .await
    }

    /// The heights (device pixels) at which `user` shows each publisher's video, by publisher
    /// user id; each replaces the last, publishers not named get no limit. A simulcast
    /// publisher's video reaches `user` in the smallest layer at least that tall (0: the
    /// lowest); without simulcast nothing changes.
    pub async fn set_tile_heights(
        &self,
        room_id: &str,
        user_id: &str,
        heights: HashMap<String, u16>,
    ) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::SetTileHeights {
            user,
            heights,
            reply,
        })
        .await
    }

    /// The participant's signaling is away (its socket vanished): its deadlines for answers
    /// and for a broken connection hold until [`resume`](Self::resume); what it is sent
    /// meanwhile is lost. The media goes on as it can.
    pub async fn signaling_away(&self, room_id: &str, user_id: &str) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::SignalingAway { user, reply })
            .await
    }

    /// The participant's signaling is back (a new socket took the session): an offer still
    /// unanswered is sent again, a broken connection is offered an ICE restart (with a new
    /// grace), and a paused video is said again.
    pub async fn resume(&self, room_id: &str, user_id: &str) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::Resume { user, reply })
            .await
    }

    /// The participant leaves: its connection closes and its tracks leave the others.
    pub async fn leave(&self, room_id: &str, user_id: &str) -> Result<(), SfuError> {
        self.remove(room_id, user_id, CloseReason::Left).await
    }

    /// Like [`leave`](Self::leave), reported to the participant as `Kicked`.
    pub async fn kick(&self, room_id: &str, user_id: &str) -> Result<(), SfuError> {
        self.remove(room_id, user_id, CloseReason::Kicked).await
    }

    /// The gateway lost the participant's socket for good (after its grace period).
    pub async fn disconnect(&self, room_id: &str, user_id: &str) -> Result<(), SfuError> {
        self.remove(room_id, user_id, CloseReason::ConnectionFailed)
            .await
    }

    async fn remove(
        &self,
        room_id: &str,
        user_id: &str,
        reason: CloseReason,
    ) -> Result<(), SfuError> {
        let user = user_id.to_owned();
        self.call(room_id, |reply| RoomCmd::Leave {
            user,
            reason,
            reply,
        })
        .await
    }

    /// Ends the room: every participant is closed (`RoomEnded`) and the room goes away.
    pub async fn end_room(&self, room_id: &str) -> Result<(), SfuError> {
        self.call(room_id, |reply| RoomCmd::End { reply }).await
    }

    /// Starts a connectivity probe for `owner` (see [`ProbeTransport`]) from the client's
    /// offer, closing any probe of the same owner that is still open; its port comes from
    /// the participants' range. The answer carries every server candidate of the path.
    pub async fn probe(
        &self,
        owner: &str,
        transport: ProbeTransport,
        offer: String,
    ) -> Result<ProbeAnswer, SfuError> {
        if self.shared.cancel.is_cancelled() {
            return Err(SfuError::ShuttingDown);
        }
        let (reply, answer) = oneshot::channel();
        let probe = start_probe(self.shared.clone(), owner.to_owned(), transport, offer);
        // Built on an SFU thread: the connection's driver runs where it is built.
        self.shards.first().spawn(async move {
            let _ = reply.send(probe.await);
        });
        answer.await.map_err(|_| SfuError::Internal)?
    }

    /// Whether ICE-TCP is offered (the `tcp` probe needs it).
    pub fn ice_tcp(&self) -> bool {
        self.shared.config.ice_tcp
    }

    /// STUN/TURN servers for the browser's `RTCPeerConnection({iceServers})`.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        self.shared.config.ice_servers.clone()
    }

    /// The shared UDP address in single-port mode.
    pub fn single_port_addr(&self) -> Option<std::net::SocketAddr> {
        self.shared.mux.as_ref().map(|mux| mux.local_addr())
    }

    /// Live rooms on each of the SFU's threads (`worker_threads` of them).
    pub fn rooms_per_thread(&self) -> Vec<usize> {
        self.shards.rooms()
    }

    /// Participants in the live rooms of each SFU thread; a new room goes to the thread with
    /// the fewest.
    pub fn people_per_thread(&self) -> Vec<usize> {
        self.shards.people()
    }

    /// The OS thread id of each of the SFU's threads (`None` where /proc does not tell), for
    /// tools that read a thread's CPU time or pin it to a core.
    pub fn thread_ids(&self) -> Vec<Option<u32>> {
        self.shards.thread_ids()
    }

    /// Current counters.
    pub fn stats(&self) -> SfuStats {
        let m = &self.shared.metrics;
        SfuStats {
            rooms: m.rooms.load(Ordering::Relaxed),
            peers: m.peers.load(Ordering::Relaxed),
            tasks: m.tasks.load(Ordering::Relaxed),
            runtime_tasks: self.shards.alive_tasks(),
            leased_ports: self.shared.ports.leased(),
            received_packets: m.received_packets.get(),
            received_bytes: m.received_bytes.get(),
            forwarded_packets: m.forwarded_packets.get(),
            forwarded_bytes: m.forwarded_bytes.get(),
            dropped_packets: m.dropped_packets.get(),
            keyframe_requests: m.keyframe_requests.load(Ordering::Relaxed),
            relayed_nacks: m.relayed_nacks.load(Ordering::Relaxed),
            nack_requested_packets: m.nack_requested_packets.load(Ordering::Relaxed),
            nack_answered_packets: m.nack_answered_packets.load(Ordering::Relaxed),
            nack_relayed_packets: m.nack_relayed_packets.load(Ordering::Relaxed),
            nack_limited_packets: m.nack_limited_packets.load(Ordering::Relaxed),
            connections_failed: m.connections_failed.load(Ordering::Relaxed),
            connect_timeouts: m.connect_timeouts.load(Ordering::Relaxed),
            ignored_candidates: m.ignored_candidates.load(Ordering::Relaxed),
            video_pauses: m.video_pauses.load(Ordering::Relaxed),
            recycled_legs: m.recycled_legs.load(Ordering::Relaxed),
            layer_switches: m.layer_switches.load(Ordering::Relaxed),
            mux_routes: self.shared.mux.as_ref().map_or(0, |mux| mux.route_count()),
            probes: live_probes(&self.shared.probes),
        }
    }

    /// Cancels everything (one token) and waits up to two seconds for the rooms to close.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        let metrics = Arc::clone(&self.shared.metrics);
        let (done, finished) = oneshot::channel();
        self.shards.first().spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while metrics.rooms.load(Ordering::Relaxed) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = done.send(());
        });
        let _ = finished.await;
    }
}
