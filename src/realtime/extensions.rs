//! Typed per-socket storage (the gateway keeps the authenticated user id here).

use std::any::{Any, TypeId};
use std::collections::HashMap;

use parking_lot::Mutex;

/// A map from type to one value of that type, safe to share between threads.
/// Empty until first used, so it costs a few words on an idle socket.
#[derive(Default)]
pub struct Extensions {
    map: Mutex<Option<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Extensions {
    /// Stores `value`, returning the previous value of that type.
    pub fn insert<T: Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.map
            .lock()
            .get_or_insert_with(HashMap::new)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// A clone of the stored value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.map
            .lock()
            .as_ref()?
            .get(&TypeId::of::<T>())?
            .downcast_ref::<T>()
            .cloned()
    }

    /// Runs `f` on the stored value of type `T` without cloning it.
    pub fn with<T: Send + Sync + 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guard = self.map.lock();
        let value = guard.as_mut()?.get_mut(&TypeId::of::<T>())?;
        value.downcast_mut::<T>().map(f)
    }

    pub fn remove<T: Send + Sync + 'static>(&self) -> Option<T> {
        self.map
            .lock()
            .as_mut()?
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.map
            .lock()
            .as_ref()
            .is_some_and(|m| m.contains_key(&TypeId::of::<T>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct UserId(u32);

    #[test]
    fn stores_one_value_per_type() {
        let ext = Extensions::default();
        assert_eq!(ext.get::<UserId>(), None);
        assert_eq!(ext.insert(UserId(1)), None);
        assert_eq!(ext.insert(UserId(2)), Some(UserId(1)));
        ext.insert(String::from("name"));
        assert_eq!(ext.get::<UserId>(), Some(UserId(2)));
        assert_eq!(ext.with(|u: &mut UserId| u.0 += 1), Some(()));
        assert_eq!(ext.remove::<UserId>(), Some(UserId(3)));
        assert!(!ext.contains::<UserId>());
        assert!(ext.contains::<String>());
    }
}
