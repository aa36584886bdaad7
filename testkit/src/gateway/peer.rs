//! A browser as the gateway sees it, for the media tests and the capacity load tool: a Socket.IO socket that joins the
//! room and the SFU (`sfu:join`), and a webrtc-rs peer whose signaling goes over that socket.
//! The socket can go silent (as when its network goes away: nothing read, no pong) and a new
//! socket of the same user take the session over (`sfu:resume`).

use std::sync::Arc;

use crate::sfu_client::{Attribution, Peer, local_offer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

use super::sio::{Sio, Ws};

type Candidates = mpsc::UnboundedReceiver<RTCIceCandidateInit>;

pub struct GatewayPeer {
    pub peer: Peer,
    /// The `sfu:join` ack's `sessionId`.
    pub session_id: String,
    link: Option<Link>,
}

/// The task that carries the peer's signaling over one socket; stopping it hands the socket
/// and the peer's candidates back.
struct Link {
    stop: oneshot::Sender<()>,
    task: JoinHandle<(Ws, Candidates)>,
}

impl GatewayPeer {
    /// Enters `room` on the server at `base` as the user of `token` (id `user_id`), opens an
    /// SFU session and publishes (audio and video tracks, media not started).
    pub async fn join(base: &str, token: &str, user_id: &str, room: &str) -> Self {
        let mut sio = Sio::connect(base, token).await;
        let ack = sio.call("room:join", json!({ "roomId": room })).await;
        assert_eq!(ack["ok"], true, "{ack}");
        let ack = sio.call("sfu:join", json!({ "publish": true })).await;
        assert_eq!(ack["ok"], true, "{ack}");
        let session_id = ack["sessionId"]
            .as_str()
            .expect("the join ack names the session")
            .to_owned();

        let mut peer = Peer::new(user_id, "127.0.0.1", false, Attribution::StreamId).await;
        peer.add_tracks().await;
        let offer = local_offer(&peer.pc).await;
        sio.send(&format!("42{}", json!(["sfu:offer", { "sdp": offer }])))
            .await;
        let candidates = peer.candidates.take().unwrap();
        let link = Link::start(sio, Arc::clone(&peer.pc), candidates);
        GatewayPeer {
            peer,
            session_id,
            link: Some(link),
        }
    }

    /// The socket goes silent: still open, never read again (no pong), as when its network
    /// goes away. The returned socket must be kept: dropping it closes the connection, which
    /// the server reads as a clean close.
    pub async fn go_silent(&mut self) -> Ws {
        let link = self.link.take().expect("a socket to silence");
        let (ws, candidates) = link.stop().await;
        self.peer.candidates = Some(candidates);
        ws
    }

    /// A new socket of the user of `token` enters `room` and asks `sfu:resume` for
    /// `session_id`; answers the ack. Taken over, the signaling goes on over the new socket.
    pub async fn resume(&mut self, base: &str, token: &str, room: &str, session_id: &str) -> Value {
        let (sio, ack) = resume_on_new_socket(base, token, room, session_id).await;
        if ack["ok"] == true {
            let candidates = self.peer.candidates.take().expect("a silenced socket");
            self.link = Some(Link::start(sio, Arc::clone(&self.peer.pc), candidates));
        }
        ack
    }

    pub async fn close(mut self) {
        if let Some(link) = self.link.take() {
            link.task.abort();
        }
        self.peer.close().await;
    }
}

/// A new socket of the user of `token` enters `room` and asks `sfu:resume` for
/// `session_id`: the socket and the ack.
pub async fn resume_on_new_socket(
    base: &str,
    token: &str,
    room: &str,
    session_id: &str,
) -> (Sio, Value) {
    let mut sio = Sio::connect(base, token).await;
    let ack = sio.call("room:join", json!({ "roomId": room })).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = sio
        .call(
            "sfu:resume",
            json!({ "roomId": room, "sessionId": session_id }),
        )
        .await;
    (sio, ack)
}

impl Link {
    /// Answers pings, applies what the SFU sends (replying over the socket), and trickles the
    /// peer's candidates, until stopped.
    fn start(mut sio: Sio, pc: Arc<dyn PeerConnection>, mut candidates: Candidates) -> Link {
        let heard = sio.take_heard();
        let mut ws = sio.into_ws();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            for (name, payload) in heard {
                if let Some(reply) = on_signal(&pc, &name, &payload).await {
                    let _ = ws.send(Message::text(format!("42{reply}"))).await;
                }
            }
            loop {
                tokio::select! {
                    _ = &mut stopped => return (ws, candidates),
                    frame = ws.next() => {
                        let Some(Ok(Message::Text(text))) = frame else {
                            let _ = (&mut stopped).await;
                            return (ws, candidates);
                        };
                        if &*text == "2" {
                            let _ = ws.send(Message::text("3")).await;
                            continue;
                        }
                        let Some((name, payload)) = event_of(&text) else { continue };
                        if let Some(reply) = on_signal(&pc, &name, &payload).await {
                            let _ = ws.send(Message::text(format!("42{reply}"))).await;
                        }
                    }
                    candidate = candidates.recv() => {
                        let Some(c) = candidate else { continue };
                        let body = json!(["sfu:candidate", {
                            "candidate": c.candidate,
                            "sdpMid": c.sdp_mid,
                            "sdpMLineIndex": c.sdp_mline_index,
                        }]);
                        let _ = ws.send(Message::text(format!("42{body}"))).await;
                    }
                }
            }
        });
        Link { stop, task }
    }

    async fn stop(self) -> (Ws, Candidates) {
        let _ = self.stop.send(());
        self.task.await.expect("the signaling task")
    }
}

/// `42["name", payload]` → (name, payload).
fn event_of(text: &str) -> Option<(String, Value)> {
    let body = text.strip_prefix("42")?;
    let Ok(Value::Array(args)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    let name = args.first()?.as_str()?.to_owned();
    Some((name, args.get(1).cloned().unwrap_or(Value::Null)))
}

/// Applies what the SFU sent through the gateway; returns the event to send back, if any.
async fn on_signal(pc: &Arc<dyn PeerConnection>, name: &str, payload: &Value) -> Option<Value> {
    let sdp = payload["sdp"].as_str().unwrap_or_default().to_owned();
    match name {
        "sfu:answer" => {
            pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap())
                .await
                .unwrap();
            None
        }
        "sfu:offer" => {
            pc.set_remote_description(RTCSessionDescription::offer(sdp).unwrap())
                .await
                .unwrap();
            let answer = pc.create_answer(None).await.unwrap();
            pc.set_local_description(answer).await.unwrap();
            let local = pc.local_description().await.unwrap();
            Some(json!(["sfu:answer", { "sdp": local.sdp }]))
        }
        "sfu:candidate" => {
            let init = RTCIceCandidateInit {
                candidate: payload["candidate"].as_str().unwrap_or_default().to_owned(),
                sdp_mid: payload["sdpMid"].as_str().map(str::to_owned),
                sdp_mline_index: payload["sdpMLineIndex"].as_u64().map(|i| i as u16),
                username_fragment: None,
                url: None,
            };
            let _ = pc.add_ice_candidate(init).await;
            None
        }
        _ => None,
    }
}
