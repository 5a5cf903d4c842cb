//! A key → sorted set of names map that drops a key with its last name, so that what the index
//! holds is bounded by what exists.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

pub(super) struct MultiMap<K>(HashMap<K, BTreeSet<String>>);

impl<K> Default for MultiMap<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Hash + Eq> MultiMap<K> {
    pub(super) fn insert(&mut self, key: K, name: &str) {
        self.0.entry(key).or_default().insert(name.to_string());
    }

    pub(super) fn remove(&mut self, key: &K, name: &str) {
        if let Some(set) = self.0.get_mut(key) {
            set.remove(name);
            if set.is_empty() {
                self.0.remove(key);
            }
        }
    }

    pub(super) fn iter<'a>(&'a self, key: &K) -> impl Iterator<Item = &'a String> + 'a {
        self.0.get(key).into_iter().flatten()
    }

    pub(super) fn get(&self, key: &K) -> Vec<String> {
        self.iter(key).cloned().collect()
    }

    pub(super) fn len(&self, key: &K) -> usize {
        self.0.get(key).map_or(0, BTreeSet::len)
    }

    #[cfg(test)]
    pub(super) fn keys(&self) -> usize {
        self.0.len()
    }
}
