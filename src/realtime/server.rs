//! The entry point: build a [`SocketIo`], declare namespaces, mount it into actix.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use actix_web::web;
use parking_lot::RwLock;
use serde::Serialize;
use serde_json::Value;

use super::Config;
use super::adapter::{Adapter, BroadcastOptions, LocalAdapter, LocalNamespace, Room};
use super::client::{Registry, SocketIoHandler};
use super::engine::Engine;
use super::namespace::{AdapterFactory, ConnectError, ConnectHandler, Namespace};
use super::operators::BroadcastOperator;
use super::packet::Args;
use super::socket::{EmitError, SocketRef};

/// The Socket.IO server. Cheap to clone; clone it into every actix worker.
#[derive(Clone)]
pub struct SocketIo {
    engine: Arc<Engine<SocketIoHandler>>,
    registry: Arc<Registry>,
    factory: AdapterFactory,
    main: Arc<Namespace>,
}

pub struct SocketIoBuilder {
    config: Config,
    factory: AdapterFactory,
}

impl SocketIoBuilder {
    /// Sets the adapter, built once per namespace from that namespace's local view.
    /// Default: [`LocalAdapter`].
    pub fn adapter<F>(mut self, factory: F) -> SocketIoBuilder
    where
        F: Fn(LocalNamespace) -> Arc<dyn Adapter> + Send + Sync + 'static,
    {
        self.factory = Arc::new(factory);
        self
    }

    pub fn build(self) -> SocketIo {
        let config = Arc::new(self.config);
        let registry = Arc::new(Registry {
            namespaces: RwLock::new(HashMap::new()),
            config: Arc::clone(&config),
        });
        let engine = Engine::new(
            (*config).clone(),
            SocketIoHandler {
                registry: Arc::clone(&registry),
            },
        );
        // The main namespace always exists, accepting everyone until the app sets a handler.
        let accept_all: ConnectHandler = Arc::new(|_socket, _auth| Box::pin(async { Ok(()) }));
        let main = Namespace::new(
            Arc::from("/"),
            accept_all,
            &self.factory,
            Arc::clone(&config),
            Arc::clone(&engine.counters),
        );
        registry
            .namespaces
            .write()
            .insert(Arc::clone(&main.name), Arc::clone(&main));
        SocketIo {
            engine,
            registry,
            factory: self.factory,
            main,
        }
    }
}

impl SocketIo {
    pub fn builder(config: Config) -> SocketIoBuilder {
        SocketIoBuilder {
            config,
            factory: Arc::new(|local| Arc::new(LocalAdapter::new(local)) as Arc<dyn Adapter>),
        }
    }

    /// A server with the local adapter.
    pub fn new(config: Config) -> SocketIo {
        SocketIo::builder(config).build()
    }

    pub fn config(&self) -> &Config {
        &self.registry.config
    }

    /// Declares namespace `name` (or replaces its connect handler). The handler gets the new
    /// socket and the CONNECT auth payload (`{}` when none); it registers event handlers and
    /// returns `Err(ConnectError)` to refuse. Emits made inside it reach the client after
    /// the CONNECT answer.
    pub fn ns<F, Fut>(&self, name: &str, handler: F)
    where
        F: Fn(SocketRef, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        let handler: ConnectHandler = Arc::new(move |socket, auth| Box::pin(handler(socket, auth)));
        let name: Arc<str> = if name.starts_with('/') {
            Arc::from(name)
        } else {
            Arc::from(format!("/{name}"))
        };
        let mut namespaces = self.registry.namespaces.write();
        match namespaces.get(&name) {
            Some(ns) => *ns.handler.write() = handler,
            None => {
                let ns = Namespace::new(
                    Arc::clone(&name),
                    handler,
                    &self.factory,
                    Arc::clone(&self.registry.config),
                    Arc::clone(&self.engine.counters),
                );
                namespaces.insert(name, ns);
            }
        }
    }

    /// Mounts the Engine.IO endpoint (`config.path`) into an actix `App` or scope.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        self.engine.configure(cfg);
    }

    /// All sockets of namespace `name`, as an operator; `None` if it was not declared.
    pub fn of(&self, name: &str) -> Option<BroadcastOperator> {
        let ns = self.registry.namespaces.read().get(name).cloned()?;
        Some(BroadcastOperator::new(ns, BroadcastOptions::default()))
    }

    fn main_ns(&self) -> BroadcastOperator {
        BroadcastOperator::new(Arc::clone(&self.main), BroadcastOptions::default())
    }

    /// Sockets of the main namespace in `room`.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.main_ns().to(room)
    }

    /// Same as [`to`](Self::to).
    pub fn in_(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.main_ns().to(room)
    }

    /// Sockets of the main namespace not in `room`.
    pub fn except(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.main_ns().except(room)
    }

    /// Emits to every socket of the main namespace.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), EmitError> {
        self.main_ns().emit(event, data).await
    }

    /// Emits any arguments to every socket of the main namespace.
    pub async fn emit_args(&self, event: &str, args: Args) -> Result<(), EmitError> {
        self.main_ns().emit_args(event, args).await
    }

    /// A local socket of namespace `nsp` by id.
    pub fn socket(&self, nsp: &str, id: super::Sid) -> Option<SocketRef> {
        self.registry.namespaces.read().get(nsp)?.socket(id)
    }

    /// Number of local sockets in namespace `nsp`.
    pub fn socket_count(&self, nsp: &str) -> usize {
        self.registry
            .namespaces
            .read()
            .get(nsp)
            .map_or(0, |ns| ns.sockets.read().len())
    }

    /// Number of nodes serving the main namespace (1 with the local adapter).
    pub async fn server_count(&self) -> Result<usize, super::AdapterError> {
        self.main.adapter.server_count().await
    }

    /// Number of open Engine.IO sessions on this node.
    pub fn connection_count(&self) -> usize {
        self.engine.session_count()
    }

    /// This node's counters: sessions by transport, sockets, events in and out, refusals.
    pub fn stats(&self) -> super::RealtimeStats {
        let (polling_sessions, websocket_sessions) = self.engine.sessions_by_transport();
        super::RealtimeStats {
            polling_sessions,
            websocket_sessions,
            sockets: self.socket_count("/"),
            ..self.engine.counters.snapshot()
        }
    }

    /// Closes every connection (graceful shutdown); disconnect handlers run.
    pub fn close(&self) {
        self.engine.close_all();
    }

    /// Takes no new connection from now on (handshakes get 503 with `Retry-After`), then
    /// closes every open one. The clients reconnect by themselves: to another replica behind
    /// a proxy, or here again after a restart.
    pub fn drain(&self) {
        self.engine.stop_admitting();
        self.engine.close_all();
    }
}
