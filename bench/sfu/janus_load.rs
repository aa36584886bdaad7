//! The SFU load of `sfu_load`, against Janus's VideoRoom plugin instead of our SFU: N
//! publishers × M receive-only subscribers of the same webrtc-rs clients, signalling over
//! Janus's HTTP REST API (one session per participant, long-poll for events, keepalives).
//! Janus runs as its own process (bench/sfu/janus/run.sh starts it pinned to core 0, this tool
//! on core 1); its CPU is read from /proc/<pid>/stat. Janus exposes no forwarded-packet
//! counter, so `forwarded_pps` is estimated from what the clients received.
//!
//! cargo run --release --example sfu_janus_load -- --janus-pid PID --publishers 4 --subscribers 8
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use talkconnect_testkit::sfu_client::{self, Attribution, LayerOrder, Peer};
use talkconnect_testkit::sfu_measure::{self, Load, LoadArgs, Snapshot};
use tokio::sync::{Mutex, mpsc};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    load: LoadArgs,
    /// Janus HTTP API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    janus_url: String,
    /// Address the clients bind to: Janus gathers no loopback candidates, so this is the
    /// host's own address (bench/sfu/janus/run.sh puts the same one in Janus's config).
    #[arg(long, default_value = "127.0.0.1")]
    client_ip: String,
    /// Janus's process id (its CPU is read from /proc/<pid>/stat).
    #[arg(long)]
    janus_pid: u32,
}

/// Publisher feed ids are FEED_BASE + index.
const FEED_BASE: u64 = 1000;

/// One Janus API session: requests, and the events its long poll brings.
struct Session {
    http: reqwest::Client,
    url: String,
    events: Mutex<mpsc::UnboundedReceiver<Value>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn transaction() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// POSTs a Janus API request (with a fresh transaction unless it has one); panics on an error.
async fn post(http: &reqwest::Client, url: &str, mut body: Value) -> Value {
    if body["transaction"].is_null() {
        body["transaction"] = json!(transaction());
    }
    let reply: Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("janus request")
        .json()
        .await
        .expect("janus reply");
    tracing::debug!(%body, %reply, "janus request");
    assert_ne!(reply["janus"], "error", "janus: {body} -> {reply}");
    reply
}

impl Session {
    async fn create(http: &reqwest::Client, base: &str) -> Session {
        let reply = post(http, base, json!({"janus": "create"})).await;
        let url = format!("{base}/{}", reply["data"]["id"]);
        let (tx, rx) = mpsc::unbounded_channel();
        let poll = {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                loop {
                    let Ok(reply) = http.get(format!("{url}?maxev=10")).send().await else {
                        break;
                    };
                    let Ok(events) = reply.json::<Value>().await else {
                        break;
                    };
                    let events = match events {
                        Value::Array(events) => events,
                        event => vec![event],
                    };
                    for event in events {
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                }
            })
        };
        let keepalive = {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    post(&http, &url, json!({"janus": "keepalive"})).await;
                }
            })
        };
        Session {
            http: http.clone(),
            url,
            events: Mutex::new(rx),
            tasks: vec![poll, keepalive],
        }
    }

    async fn attach(&self) -> String {
        let reply = post(
            &self.http,
            &self.url,
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
        )
        .await;
        format!("{}/{}", self.url, reply["data"]["id"])
    }

    /// Sends a plugin message on `handle`; returns the plugin's reply (the synchronous one, or
    /// the event that carries the same transaction) with its jsep, if any.
    async fn message(&self, handle: &str, body: Value, jsep: Option<Value>) -> Value {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let id = transaction();
        request["transaction"] = json!(id);
        let reply = post(&self.http, handle, request.clone()).await;
        match reply["janus"].as_str() {
            Some("success") => return reply,
            Some("ack") => {}
            _ => panic!("janus: {request} -> {reply}"),
        }
        let mut events = self.events.lock().await;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("janus event in time")
                .expect("janus long poll alive");
            tracing::debug!(%event, "janus event");
            if event["transaction"] == json!(id) {
                let error = &event["plugindata"]["data"]["error"];
                assert!(error.is_null(), "janus: {request} -> {event}");
                return event;
            }
        }
    }

    async fn destroy(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self
            .http
            .post(&self.url)
            .json(&json!({"janus": "destroy", "transaction": transaction()}))
            .send()
            .await;
    }
}

/// Applies Janus's jsep (offer or answer) to `pc`; for an offer, returns our answer's jsep.
async fn apply_jsep(pc: &Arc<dyn PeerConnection>, jsep: &Value) -> Option<Value> {
    let sdp = jsep["sdp"].as_str().expect("jsep sdp").to_owned();
    if jsep["type"] == "answer" {
        let answer = RTCSessionDescription::answer(sdp).unwrap();
        pc.set_remote_description(answer).await.expect("answer");
        return None;
    }
    let offer = RTCSessionDescription::offer(sdp).unwrap();
    pc.set_remote_description(offer).await.expect("offer");
    let answer = pc.create_answer(None).await.expect("create answer");
    pc.set_local_description(answer).await.expect("set answer");
    let local = pc.local_description().await.expect("local").sdp;
    Some(json!({"type": "answer", "sdp": local}))
}

/// Trickles the peer's local candidates to `handle` from now on.
fn trickle(session: &Session, handle: &str, peer: &mut Peer) {
    let mut candidates = peer.candidates.take().expect("candidates");
    let (http, handle) = (session.http.clone(), handle.to_owned());
    peer.tasks.push(tokio::spawn(async move {
        while let Some(c) = candidates.recv().await {
            let candidate = json!({
                "candidate": c.candidate,
                "sdpMid": c.sdp_mid,
                "sdpMLineIndex": c.sdp_mline_index,
            });
            post(
                &http,
                &handle,
                json!({"janus": "trickle", "candidate": candidate}),
            )
            .await;
        }
    }));
}

/// A participant: a publishing peer connection (publishers) and/or one subscribing to the
/// other publishers' feeds, on one Janus session.
struct Participant {
    user: String,
    session: Session,
    /// The address the peer connections bind to.
    ip: String,
    /// Every publisher's user name, by index.
    names: Vec<String>,
    publisher: Option<Peer>,
    subscriber: Option<Peer>,
}

impl Participant {
    async fn new(http: &reqwest::Client, args: &Args, user: String) -> Self {
        let names = (0..args.load.publishers)
            .map(|i| format!("pub{i}"))
            .collect();
        Participant {
            user,
            session: Session::create(http, &args.janus_url).await,
            ip: args.client_ip.clone(),
            names,
            publisher: None,
            subscriber: None,
        }
    }

    /// Joins as publisher `index` (feed FEED_BASE + index), publishes Opus + VP8 and starts
    /// sending media.
    async fn publish(&mut self, load: &LoadArgs, room: u64, index: usize) {
        let handle = self.session.attach().await;
        let mut peer = if load.simulcast {
            // Janus takes the first rid for the highest layer, as janus.js lists them.
            Peer::simulcast(
                &self.user,
                &self.ip,
                Attribution::StreamId,
                LayerOrder::HighestFirst,
            )
            .await
        } else {
            Peer::new(&self.user, &self.ip, false, Attribution::StreamId).await
        };
        let join = json!({"request": "join", "ptype": "publisher", "room": room,
                          "id": FEED_BASE + index as u64, "display": self.user});
        self.session.message(&handle, join, None).await;
        peer.add_tracks().await;
        let sdp = peer.local_offer().await;
        let jsep = json!({"type": "offer", "sdp": sdp});
        let reply = self
            .session
            .message(&handle, json!({"request": "publish"}), Some(jsep))
            .await;
        apply_jsep(&peer.pc, &reply["jsep"]).await;
        trickle(&self.session, &handle, &mut peer);
        peer.start_media(load.video_pps, load.payload);
        self.publisher = Some(peer);
    }

    /// Subscribes to every publisher's feed but its own, on one multistream connection.
    async fn subscribe(&mut self, room: u64) {
        let feeds: Vec<Value> = (0..self.names.len())
            .filter(|i| self.names[*i] != self.user)
            .map(|i| json!({"feed": FEED_BASE + i as u64}))
            .collect();
        if feeds.is_empty() {
            return;
        }
        let handle = self.session.attach().await;
        let attribution = Attribution::Payload(self.names.clone());
        let mut peer = Peer::new(&self.user, &self.ip, false, attribution).await;
        let join = json!({"request": "join", "ptype": "subscriber", "room": room,
                          "streams": feeds});
        let reply = self.session.message(&handle, join, None).await;
        let answer = apply_jsep(&peer.pc, &reply["jsep"]).await;
        self.session
            .message(&handle, json!({"request": "start"}), answer)
            .await;
        trickle(&self.session, &handle, &mut peer);
        self.subscriber = Some(peer);
    }

    async fn close(self) {
        for peer in self.publisher.into_iter().chain(self.subscriber) {
            peer.close().await;
        }
        self.session.destroy().await;
    }
}

fn main() {
    sfu_measure::init_tracing();
    let args = Args::parse();
    let runtime = sfu_measure::load_runtime(args.load.load_threads);
    runtime.block_on(async move {
        let load = &args.load;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4 * (load.publishers + load.subscribers))
            .build()
            .expect("http client");
        // A fresh room per run, sized and with bitrate caps high enough not to throttle.
        let room = 1 + u64::from(rand::random::<u32>());
        let admin = Session::create(&http, &args.janus_url).await;
        let admin_handle = admin.attach().await;
        let create = json!({"request": "create", "room": room, "permanent": false,
                            "publishers": load.publishers + 1, "bitrate": 100_000_000,
                            "bitrate_cap": false, "fir_freq": 0, "audiocodec": "opus",
                            "videocodec": "vp8", "notify_joining": false});
        admin.message(&admin_handle, create, None).await;

        let mut participants = Vec::new();
        for i in 0..load.publishers {
            let mut p = Participant::new(&http, &args, format!("pub{i}")).await;
            p.publish(load, room, i).await;
            participants.push(p);
        }
        // Janus offers a feed to subscribers only once its publisher's connection is up.
        sfu_client::wait_for("publishers connected", Duration::from_secs(30), || {
            participants.iter().all(|p| {
                let peer = p.publisher.as_ref().expect("publisher");
                peer.state
                    .connected
                    .load(std::sync::atomic::Ordering::SeqCst)
            })
        })
        .await;
        for n in 0..load.subscribers {
            participants.push(Participant::new(&http, &args, format!("sub{n}")).await);
        }
        for p in &mut participants {
            p.subscribe(room).await;
        }
        if !load.no_pin {
            sfu_measure::pin_threads(load.sfu_core);
        }
        let measured = Load {
            names: (0..load.publishers).map(|i| format!("pub{i}")).collect(),
            senders: participants
                .iter()
                .filter_map(|p| p.publisher.as_ref().map(|peer| &*peer.state))
                .collect(),
            receivers: participants
                .iter()
                .filter_map(|p| {
                    let peer = p.subscriber.as_ref()?;
                    Some((p.user.as_str(), &*peer.state))
                })
                .collect(),
        };
        measured.warm_up().await;
        let snapshot = || {
            let (_, own) = sfu_measure::own_cpu_ticks();
            let janus = sfu_measure::process_cpu_ticks(args.janus_pid);
            Snapshot::take(&measured, (janus, own), None)
        };
        let s0 = snapshot();
        tokio::time::sleep(Duration::from_secs(load.seconds)).await;
        let s1 = snapshot();
        sfu_measure::print_line(&format!(
            "janus {}",
            sfu_measure::report(load.publishers, load.subscribers, &s0, &s1)
        ));
        drop(measured);
        for p in participants {
            p.close().await;
        }
        let destroy = json!({"request": "destroy", "room": room});
        admin.message(&admin_handle, destroy, None).await;
        admin.destroy().await;
    });
}
