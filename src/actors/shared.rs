//! Maps that one actor writes and others read without a mailbox (the HTTP
//! API, a status builder): the ownership is in the types. The owning actor
//! holds the one [`Owned`] (not `Clone`); readers get [`View`]s, which have
//! no way to write. Readers copy values out, so no map guard is ever held
//! across an `.await`.

use std::borrow::Borrow;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::Arc;

use dashmap::DashMap;

/// The writing side, held by the owning actor alone.
pub struct Owned<K: Eq + Hash, V>(Arc<DashMap<K, V>>);

/// A read-only side; clone it freely.
pub struct View<K: Eq + Hash, V>(Arc<DashMap<K, V>>);

impl<K: Eq + Hash, V> Default for Owned<K, V> {
    fn default() -> Self {
        Self(Arc::new(DashMap::new()))
    }
}

impl<K: Eq + Hash, V> Owned<K, V> {
    /// A reader of this map.
    pub fn view(&self) -> View<K, V> {
        View(self.0.clone())
    }
}

/// The owner may do anything a `DashMap` does.
impl<K: Eq + Hash, V> Deref for Owned<K, V> {
    type Target = DashMap<K, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K: Eq + Hash, V> Clone for View<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K: Eq + Hash + Clone, V: Clone> View<K, V> {
    /// A copy of the value at `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(key).map(|v| v.value().clone())
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy of every entry, in no particular order.
    pub fn entries(&self) -> Vec<(K, V)> {
        self.0
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// A copy of every value, in no particular order.
    pub fn values(&self) -> Vec<V> {
        self.0.iter().map(|e| e.value().clone()).collect()
    }

    /// The first `f(key, value)` that is `Some`.
    pub fn find_map<T>(&self, mut f: impl FnMut(&K, &V) -> Option<T>) -> Option<T> {
        self.0.iter().find_map(|e| f(e.key(), e.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_sees_what_the_owner_writes() {
        let owned: Owned<String, u32> = Owned::default();
        let view = owned.view();
        assert!(view.is_empty());
        owned.insert("a".into(), 1);
        assert_eq!(view.get("a"), Some(1));
        assert_eq!(view.clone().len(), 1);
        owned.remove("a");
        assert_eq!(view.get("a"), None);
        owned.insert("b".into(), 2);
        assert_eq!(view.entries(), vec![("b".to_string(), 2)]);
        assert_eq!(
            view.find_map(|k, v| (*v == 2).then(|| k.clone())),
            Some("b".into())
        );
    }
}
