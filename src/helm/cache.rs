//! A small bounded map: the oldest entry goes when a new one would exceed the bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

pub(super) struct Bounded<V> {
    limit: usize,
    inner: Mutex<(HashMap<String, V>, VecDeque<String>)>,
}

impl<V: Clone> Bounded<V> {
    pub fn new(limit: usize) -> Self {
        Self { limit: limit.max(1), inner: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        // Only a cache: a lock poisoned by a panic elsewhere still holds good entries.
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.0.get(key).cloned()
    }

    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *inner;
        if map.remove(key).is_some() {
            order.retain(|k| k != key);
        }
    }

    pub fn put(&self, key: String, value: V) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *inner;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
        }
        while map.len() > self.limit {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_the_limit_dropping_the_oldest() {
        let c = Bounded::new(2);
        c.put("a".into(), 1);
        c.put("b".into(), 2);
        c.put("a".into(), 3);
        c.put("c".into(), 4);
        assert_eq!((c.get("a"), c.get("b"), c.get("c")), (None, Some(2), Some(4)));
    }
}
