//! Does the `Adapter` seam hold a cluster adapter? Two nodes (two `SocketIo` servers) share
//! an in-process bus adapter built the way the Redis adapter will be: local membership and
//! delivery through `LocalAdapter`, targeted operations applied locally then forwarded to
//! the other nodes of the same namespace unless `flags.local`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use talkconnect::realtime::{
    Adapter, AdapterError, BroadcastOptions, Config, EncodedPacket, LocalAdapter, LocalNamespace,
    Room, SocketInfo, SocketIo,
};
use talkconnect_testkit::realtime::*;

/// The adapters of one namespace on every node, by node id.
type Subscribers = Vec<(usize, Weak<BusAdapter>)>;

/// Stands in for Redis pub/sub: the adapters of every node, by namespace.
#[derive(Default)]
struct Bus {
    nodes: Mutex<HashMap<String, Subscribers>>,
}

struct BusAdapter {
    uid: usize,
    local: LocalAdapter,
    bus: Arc<Bus>,
}

impl BusAdapter {
    fn others(&self) -> Vec<Arc<BusAdapter>> {
        let nodes = self.bus.nodes.lock();
        nodes
            .get(self.local.local().name())
            .into_iter()
            .flatten()
            .filter(|(uid, _)| *uid != self.uid)
            .filter_map(|(_, node)| node.upgrade())
            .collect()
    }
}

#[async_trait]
impl Adapter for BusAdapter {
    fn local(&self) -> &LocalAdapter {
        &self.local
    }
    async fn broadcast(
        &self,
        packet: Arc<EncodedPacket>,
        opts: BroadcastOptions,
    ) -> Result<(), AdapterError> {
        self.local.broadcast_local(&packet, &opts);
        if !opts.flags.local {
            // What a Redis subscriber on another node does with the published message.
            for node in self.others() {
                node.local.broadcast_local(&packet, &opts);
            }
        }
        Ok(())
    }
    async fn fetch_sockets(&self, opts: BroadcastOptions) -> Result<Vec<SocketInfo>, AdapterError> {
        let mut all = self.local.fetch_local(&opts);
        if !opts.flags.local {
            for node in self.others() {
                all.extend(node.local.fetch_local(&opts));
            }
        }
        Ok(all)
    }
    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), AdapterError> {
        self.local.add_local(&opts, &rooms);
        if !opts.flags.local {
            for node in self.others() {
                node.local.add_local(&opts, &rooms);
            }
        }
        Ok(())
    }
    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: Vec<Room>,
    ) -> Result<(), AdapterError> {
        self.local.del_local(&opts, &rooms);
        if !opts.flags.local {
            for node in self.others() {
                node.local.del_local(&opts, &rooms);
            }
        }
        Ok(())
    }
    async fn disconnect_sockets(
        &self,
        opts: BroadcastOptions,
        close: bool,
    ) -> Result<(), AdapterError> {
        self.local.disconnect_local(&opts, close);
        if !opts.flags.local {
            for node in self.others() {
                node.local.disconnect_local(&opts, close);
            }
        }
        Ok(())
    }
    async fn server_count(&self) -> Result<usize, AdapterError> {
        Ok(self.others().len() + 1)
    }
}

fn node(bus: &Arc<Bus>, uid: usize) -> SocketIo {
    let bus = Arc::clone(bus);
    let io = SocketIo::builder(Config {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..Config::default()
    })
    .adapter(move |local: LocalNamespace| {
        let name = local.name().to_owned();
        let adapter = Arc::new(BusAdapter {
            uid,
            local: LocalAdapter::new(local),
            bus: Arc::clone(&bus),
        });
        bus.nodes
            .lock()
            .entry(name)
            .or_default()
            .push((uid, Arc::downgrade(&adapter)));
        adapter as Arc<dyn Adapter>
    })
    .build();
    io.ns("/", |socket, auth: serde_json::Value| async move {
        if let Some(room) = auth["room"].as_str() {
            socket.join(room.to_owned()).await;
        }
        socket.on("shout", |socket, data, _ack| async move {
            let room = data["room"].as_str().unwrap_or_default().to_owned();
            let _ = socket.to(room).emit("shouted", &data["text"]).await;
        });
        Ok(())
    });
    io
}

async fn client(server: &TestServer, room: &str) -> Ws {
    let (mut ws, _) = server.ws_session("/socket.io/").await;
    send_text(&mut ws, &format!(r#"40{{"room":"{room}"}}"#)).await;
    assert!(next_text(&mut ws).await.starts_with("40{"));
    ws
}

#[actix_web::test]
async fn broadcasts_and_remote_operations_reach_every_node() {
    let bus = Arc::new(Bus::default());
    let (io1, io2) = (node(&bus, 1), node(&bus, 2));
    let s1 = TestServer::serve(io1.clone()).await;
    let s2 = TestServer::serve(io2.clone()).await;
    let mut a = client(&s1, "r").await; // node 1
    let mut b = client(&s2, "r").await; // node 2
    let mut c = client(&s2, "other").await; // node 2

    // A socket's broadcast on node 1 reaches the room member on node 2, not the sender.
    send_text(&mut a, r#"42["shout",{"room":"r","text":"hi"}]"#).await;
    assert_eq!(next_text(&mut b).await, r#"42["shouted","hi"]"#);
    // Server-side emit from node 2 reaches node 1; `local()` stays on node 2.
    io2.to("r").emit("news", &1).await.unwrap();
    assert_eq!(next_text(&mut a).await, r#"42["news",1]"#);
    assert_eq!(next_text(&mut b).await, r#"42["news",1]"#);
    io2.to("r").local().emit("news", &2).await.unwrap();
    assert_eq!(next_text(&mut b).await, r#"42["news",2]"#);

    // fetchSockets / socketsJoin across nodes.
    assert_eq!(io1.in_("r").fetch_sockets().await.unwrap().len(), 2);
    assert_eq!(io1.in_("r").local().fetch_sockets().await.unwrap().len(), 1);
    io1.in_("other").sockets_join("r").await.unwrap();
    assert_eq!(io1.in_("r").fetch_sockets().await.unwrap().len(), 3);
    io1.emit("everyone", &"x").await.unwrap();
    assert_eq!(next_text(&mut a).await, r#"42["everyone","x"]"#);
    assert_eq!(next_text(&mut c).await, r#"42["everyone","x"]"#);
    io1.to("r").emit("news", &3).await.unwrap();
    assert_eq!(next_text(&mut c).await, r#"42["news",3]"#);

    // disconnectSockets from node 1 disconnects the room's members on node 2 too.
    io1.in_("other").disconnect_sockets().await.unwrap();
    assert_eq!(next_text(&mut c).await, "41");
    assert_eq!(io2.socket_count("/"), 1);
    s1.stop().await;
    s2.stop().await;
}
