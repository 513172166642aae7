//! The session store the contract's `session-*` imports reach: one per run (a sync or a task),
//! shared by its instances, discarded with the run, and capped in size. It keeps what it
//! accepted; [`SessionStore::evicting`] makes one that forgets, as the contract allows a host's
//! store to (a cache), for proving that the component copes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug)]
pub struct SessionStore {
    inner: Mutex<Inner>,
    max_bytes: usize,
    /// Entries kept at most; past that the oldest is forgotten without a word.
    max_entries: Option<usize>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<String, Vec<u8>>,
    bytes: usize,
    /// Keys in the order they were last set (for eviction).
    order: VecDeque<String>,
}

impl SessionStore {
    pub fn new(max_bytes: usize) -> SessionStore {
        SessionStore {
            inner: Mutex::new(Inner::default()),
            max_bytes,
            max_entries: None,
        }
    }

    /// A store that keeps at most `max_entries` entries, forgetting the oldest: a host whose
    /// store is a cache.
    pub fn evicting(max_bytes: usize, max_entries: usize) -> SessionStore {
        SessionStore {
            max_entries: Some(max_entries),
            ..SessionStore::new(max_bytes)
        }
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().entries.get(key).cloned()
    }

    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), String> {
        let mut inner = self.lock();
        let old = inner.entries.get(&key).map_or(0, |v| key.len() + v.len());
        let new_total = inner.bytes - old + key.len() + value.len();
        if new_total > self.max_bytes {
            return Err(format!(
                "the session store is full ({} bytes at most)",
                self.max_bytes
            ));
        }
        inner.bytes = new_total;
        if let Some(max) = self.max_entries {
            inner.order.retain(|k| *k != key);
            inner.order.push_back(key.clone());
            inner.entries.insert(key, value);
            while inner.order.len() > max {
                if let Some(old) = inner.order.pop_front()
                    && let Some(v) = inner.entries.remove(&old)
                {
                    inner.bytes -= old.len() + v.len();
                }
            }
        } else {
            inner.entries.insert(key, value);
        }
        Ok(())
    }

    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.lock()
            .entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_listing_is_ordered_and_bounded() {
        let s = SessionStore::new(1024);
        for k in ["b:2", "a:1", "b:1", "c"] {
            s.set(k.into(), k.as_bytes().to_vec()).unwrap();
        }
        let keys: Vec<_> = s.get_prefix("b:").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b:1", "b:2"]);
    }

    #[test]
    fn an_evicting_store_forgets_the_oldest() {
        let s = SessionStore::evicting(1024, 2);
        for k in ["a", "b", "c"] {
            s.set(k.into(), vec![1]).unwrap();
        }
        assert_eq!(s.get("a"), None);
        assert_eq!(s.get("c"), Some(vec![1]));
        assert_eq!(s.bytes(), 4);
    }

    #[test]
    fn the_cap_counts_keys_and_values_and_replacements() {
        let s = SessionStore::new(10);
        s.set("k".into(), vec![0; 9]).unwrap();
        assert!(s.set("j".into(), vec![0]).is_err());
        s.set("k".into(), vec![0; 4]).unwrap();
        assert_eq!(s.bytes(), 5);
        s.set("j".into(), vec![0; 4]).unwrap();
        assert_eq!(s.get("j"), Some(vec![0; 4]));
    }
}
