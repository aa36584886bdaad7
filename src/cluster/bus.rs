//! Domain events fan out through a `Bus`: services publish after commit, the realtime layer
//! (and, in a cluster, other replicas) subscribe.

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::broadcast;

/// Every subscriber gets every event published after it subscribed. A subscriber that falls
/// more than the channel's capacity behind loses the oldest events and is told so (`Lagged`).
#[async_trait]
pub trait Bus<E>: Send + Sync
where
    E: Send + Sync + 'static,
{
    async fn publish(&self, event: E);
    fn subscribe(&self) -> broadcast::Receiver<Arc<E>>;
    /// Registers `observer`, called with every event this process delivers (its own when
    /// published, the others' when they arrive) before any subscriber can read it, on the
    /// delivering task: for state that must never lag behind what the process says (the
    /// lobby in memory). It must be quick and must not block.
    fn observe(&self, observer: Observer<E>);
}

/// See [`Bus::observe`].
pub type Observer<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// The observers of one bus.
pub struct Observers<E>(RwLock<Vec<Observer<E>>>);

impl<E> Default for Observers<E> {
    fn default() -> Self {
        Self(RwLock::default())
    }
}

impl<E> Observers<E> {
    pub fn add(&self, observer: Observer<E>) {
        self.0.write().push(observer);
    }

    pub fn tell(&self, event: &E) {
        for observer in self.0.read().iter() {
            observer(event);
        }
    }
}

pub struct InMemoryBus<E> {
    sender: broadcast::Sender<Arc<E>>,
    observers: Observers<E>,
}

impl<E> InMemoryBus<E> {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender,
            observers: Observers::default(),
        }
    }
}

#[async_trait]
impl<E> Bus<E> for InMemoryBus<E>
where
    E: Send + Sync + 'static,
{
    async fn publish(&self, event: E) {
        self.observers.tell(&event);
        // No subscriber yet is normal (nobody listening): the event is simply not delivered.
        let _ = self.sender.send(Arc::new(event));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<E>> {
        self.sender.subscribe()
    }

    fn observe(&self, observer: Observer<E>) {
        self.observers.add(observer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_receives_events_in_order() {
        let bus: InMemoryBus<u32> = InMemoryBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(1).await;
        bus.publish(2).await;
        assert_eq!(*a.recv().await.unwrap(), 1);
        assert_eq!(*a.recv().await.unwrap(), 2);
        assert_eq!(*b.recv().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn observers_see_each_event_before_subscribers_do() {
        let bus: InMemoryBus<u32> = InMemoryBus::new(16);
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        bus.observe(Arc::new(move |n: &u32| log.lock().push(*n)));
        let mut sub = bus.subscribe();
        bus.publish(5).await;
        assert_eq!(*seen.lock(), [5], "told before publish returned");
        assert_eq!(*sub.recv().await.unwrap(), 5);
    }

    #[tokio::test]
    async fn publishing_without_subscribers_is_fine() {
        let bus: InMemoryBus<u32> = InMemoryBus::new(4);
        bus.publish(7).await;
        let mut late = bus.subscribe();
        bus.publish(8).await;
        assert_eq!(*late.recv().await.unwrap(), 8);
    }
}
