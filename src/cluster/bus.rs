//! Domain events fan out through a `Bus`: services publish after commit, the realtime layer
//! (and, in a cluster, other replicas) subscribe.

use std::sync::Arc;

use async_trait::async_trait;
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
}

pub struct InMemoryBus<E> {
    sender: broadcast::Sender<Arc<E>>,
}

impl<E> InMemoryBus<E> {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

#[async_trait]
impl<E> Bus<E> for InMemoryBus<E>
where
    E: Send + Sync + 'static,
{
    async fn publish(&self, event: E) {
        // No subscriber yet is normal (nobody listening): the event is simply not delivered.
        let _ = self.sender.send(Arc::new(event));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<E>> {
        self.sender.subscribe()
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
    async fn publishing_without_subscribers_is_fine() {
        let bus: InMemoryBus<u32> = InMemoryBus::new(4);
        bus.publish(7).await;
        let mut late = bus.subscribe();
        bus.publish(8).await;
        assert_eq!(*late.recv().await.unwrap(), 8);
    }
}
