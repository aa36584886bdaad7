//! A namespace: its connect handler, its local sockets and its adapter.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

use super::adapter::{Adapter, LocalNamespace};
use super::sid::Sid;
use super::socket::SocketRef;

/// Refusal of a CONNECT: sent to the client as CONNECT_ERROR `{message, data?}`, which the JS
/// client surfaces as `connect_error` with `err.message` and `err.data`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    pub message: String,
    pub data: Option<Value>,
}

impl ConnectError {
    pub fn new(message: impl Into<String>) -> ConnectError {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> ConnectError {
        self.data = Some(data);
        self
    }
}

pub(crate) type ConnectFuture = Pin<Box<dyn Future<Output = Result<(), ConnectError>> + Send>>;
pub(crate) type ConnectHandler = Arc<dyn Fn(SocketRef, Value) -> ConnectFuture + Send + Sync>;

/// Builds the adapter of a namespace from its local view.
pub type AdapterFactory = Arc<dyn Fn(LocalNamespace) -> Arc<dyn Adapter> + Send + Sync>;

pub(crate) struct Namespace {
    pub name: Arc<str>,
    pub handler: RwLock<ConnectHandler>,
    pub sockets: RwLock<HashMap<Sid, SocketRef>>,
    pub adapter: Arc<dyn Adapter>,
    pub config: Arc<super::Config>,
    pub counters: Arc<super::stats::Counters>,
}

impl Namespace {
    pub fn new(
        name: Arc<str>,
        handler: ConnectHandler,
        factory: &AdapterFactory,
        config: Arc<super::Config>,
        counters: Arc<super::stats::Counters>,
    ) -> Arc<Namespace> {
        Arc::new_cyclic(|weak| Namespace {
            adapter: factory(LocalNamespace {
                ns: weak.clone(),
                name: Arc::clone(&name),
            }),
            name,
            handler: RwLock::new(handler),
            sockets: RwLock::new(HashMap::new()),
            config,
            counters,
        })
    }

    pub fn socket(&self, sid: Sid) -> Option<SocketRef> {
        self.sockets.read().get(&sid).cloned()
    }

    pub fn insert(&self, socket: SocketRef) {
        self.sockets.write().insert(socket.id(), socket);
    }

    pub fn remove(&self, sid: Sid) {
        self.sockets.write().remove(&sid);
    }
}
