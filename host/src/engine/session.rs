//! The session store the contract's `session-*` imports reach: one per run (a sync or a task),
//! shared by its instances, discarded with the run, and capped in size.
//!
//! A task's store lives in memory. A sync's moves to a SQLite file in the sync's private work
//! directory ([`SessionStore::spill_to`]): what the connector keeps for later phases (every
//! user's permissions, say) then costs disk, not memory, however large the workspace, and it
//! survives an interruption with the rest of the sync's work, so a resumed sync finds it.
//!
//! It keeps what it accepted; [`SessionStore::evicting`] makes one that forgets, as the
//! contract allows a host's store to (a cache), for proving that a component copes.

use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug)]
pub struct SessionStore {
    inner: Mutex<Inner>,
    max_bytes: usize,
    /// Entries kept at most; past that the oldest is forgotten without a word.
    max_entries: Option<usize>,
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    /// Keys and values held, against `max_bytes`.
    bytes: usize,
    /// Keys in the order they were last set (kept only when evicting).
    order: VecDeque<String>,
}

#[derive(Debug)]
enum Backend {
    Memory(BTreeMap<String, Vec<u8>>),
    Disk(Connection),
}

impl SessionStore {
    pub fn new(max_bytes: usize) -> SessionStore {
        SessionStore {
            inner: Mutex::new(Inner {
                backend: Backend::Memory(BTreeMap::new()),
                bytes: 0,
                order: VecDeque::new(),
            }),
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

    /// Moves the store into `dir/session.db` (what it holds so far included), reopening what
    /// an interrupted run of the same sync left there. A store already on disk stays as it is.
    pub fn spill_to(&self, dir: &Path) -> anyhow::Result<()> {
        if matches!(self.lock().backend, Backend::Disk(_)) {
            return Ok(());
        }
        let path = dir.join("session.db");
        // Private from the start: SQLite gives its log the database file's mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        let conn = Connection::open(&path)?;
        // Only this connection uses the file (the work directory is locked): holding the lock
        // saves checking it at every transaction, and the log needs no shared-memory index.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // A write-ahead log: each entry is one quick append (a connector may store thousands,
        // from inside a call), and a crash loses at most the last ones, never the file.
        // No fsyncs (scratch that a crash of the process does not lose), set first: switching
        // the journal mode under the default setting costs four of them.
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "cache_size", -4096)?;
        conn.execute_batch(
            "create table if not exists session (key text primary key, value blob not null)",
        )?;
        let mut inner = self.lock();
        if let Backend::Memory(entries) = &inner.backend {
            let tx = conn.unchecked_transaction()?;
            for (k, v) in entries {
                tx.execute(
                    "insert or replace into session (key, value) values (?1, ?2)",
                    params![k, v],
                )?;
            }
            tx.commit()?;
        }
        let bytes: i64 = conn.query_row(
            "select coalesce(sum(length(cast(key as blob)) + length(value)), 0) from session",
            [],
            |r| r.get(0),
        )?;
        inner.bytes = bytes as usize;
        inner.backend = Backend::Disk(conn);
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        match &self.lock().backend {
            Backend::Memory(m) => m.get(key).cloned(),
            Backend::Disk(c) => c
                .prepare_cached("select value from session where key = ?1")
                .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
                .unwrap_or_else(|e| {
                    tracing::warn!("session store: reading {key:?} failed: {e}");
                    None
                }),
        }
    }

    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), String> {
        let mut inner = self.lock();
        let old = inner.entry_bytes(&key);
        let new_total = inner.bytes - old + key.len() + value.len();
        if new_total > self.max_bytes {
            return Err(format!(
                "the session store is full ({} bytes at most)",
                self.max_bytes
            ));
        }
        match &mut inner.backend {
            Backend::Memory(m) => {
                m.insert(key.clone(), value);
            }
            Backend::Disk(c) => {
                c.prepare_cached("insert or replace into session (key, value) values (?1, ?2)")
                    .and_then(|mut s| s.execute(params![key, value]))
                    .map_err(|e| format!("the session store could not write {key:?}: {e}"))?;
            }
        }
        inner.bytes = new_total;
        if let Some(max) = self.max_entries {
            inner.order.retain(|k| *k != key);
            inner.order.push_back(key);
            while inner.order.len() > max {
                if let Some(old) = inner.order.pop_front() {
                    inner.remove(&old);
                }
            }
        }
        Ok(())
    }

    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        match &self.lock().backend {
            Backend::Memory(m) => m
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Backend::Disk(c) => {
                // Keys are compared as UTF-8 bytes: every key that starts with `prefix` sorts
                // between it and `prefix` followed by the largest code point.
                let end = format!("{prefix}\u{10FFFF}");
                let rows = c
                    .prepare_cached(
                        "select key, value from session where key >= ?1 and key < ?2 order by key",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![prefix, end], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<rusqlite::Result<Vec<_>>>()
                    });
                rows.unwrap_or_else(|e| {
                    tracing::warn!("session store: listing {prefix:?} failed: {e}");
                    vec![]
                })
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half-updated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Forgets `key`'s entry.
    fn remove(&mut self, key: &str) {
        let bytes = self.entry_bytes(key);
        match &mut self.backend {
            Backend::Memory(m) => {
                m.remove(key);
            }
            Backend::Disk(c) => {
                if let Err(e) = c
                    .prepare_cached("delete from session where key = ?1")
                    .and_then(|mut s| s.execute(params![key]))
                {
                    tracing::warn!("session store: forgetting {key:?} failed: {e}");
                    return;
                }
            }
        }
        self.bytes -= bytes;
    }

    /// What `key`'s entry counts now (0 when there is none).
    fn entry_bytes(&self, key: &str) -> usize {
        let value = match &self.backend {
            Backend::Memory(m) => m.get(key).map(Vec::len),
            Backend::Disk(c) => c
                .prepare_cached("select length(value) from session where key = ?1")
                .and_then(|mut s| s.query_row(params![key], |r| r.get::<_, i64>(0)).optional())
                .ok()
                .flatten()
                .map(|n| n as usize),
        };
        value.map_or(0, |v| key.len() + v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(max: usize) -> (SessionStore, SessionStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let disk = SessionStore::new(max);
        disk.spill_to(dir.path()).unwrap();
        (SessionStore::new(max), disk, dir)
    }

    #[test]
    fn prefix_listing_is_ordered_and_bounded() {
        let (memory, disk, _dir) = both(1024);
        for s in [&memory, &disk] {
            for k in ["b:2", "a:1", "b:1", "c", "b"] {
                s.set(k.into(), k.as_bytes().to_vec()).unwrap();
            }
            let keys: Vec<_> = s.get_prefix("b:").into_iter().map(|(k, _)| k).collect();
            assert_eq!(keys, ["b:1", "b:2"]);
        }
    }

    #[test]
    fn the_cap_counts_keys_and_values_and_replacements() {
        let (memory, disk, _dir) = both(10);
        for s in [&memory, &disk] {
            s.set("k".into(), vec![0; 9]).unwrap();
            assert!(s.set("j".into(), vec![0]).is_err());
            s.set("k".into(), vec![0; 4]).unwrap();
            assert_eq!(s.bytes(), 5);
            s.set("j".into(), vec![0; 4]).unwrap();
            assert_eq!(s.get("j"), Some(vec![0; 4]));
        }
    }

    #[test]
    fn an_evicting_store_forgets_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let disk = SessionStore::evicting(1024, 2);
        disk.spill_to(dir.path()).unwrap();
        for s in [&SessionStore::evicting(1024, 2), &disk] {
            for k in ["a", "b", "c"] {
                s.set(k.into(), vec![1]).unwrap();
            }
            assert_eq!(s.get("a"), None);
            assert_eq!(s.get("c"), Some(vec![1]));
            assert_eq!(s.bytes(), 4);
        }
    }

    #[test]
    fn spilling_keeps_what_was_held_and_a_reopened_store_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::new(1 << 20);
        s.set("before".into(), b"1".to_vec()).unwrap();
        s.spill_to(dir.path()).unwrap();
        s.set("after".into(), b"2".to_vec()).unwrap();
        assert_eq!(s.get("before"), Some(b"1".to_vec()));
        // A store already on disk stays there (a failed sync spills it again to be sure).
        s.spill_to(dir.path()).unwrap();
        assert_eq!(s.get("after"), Some(b"2".to_vec()));
        drop(s);
        let again = SessionStore::new(1 << 20);
        again.spill_to(dir.path()).unwrap();
        assert_eq!(again.get("after"), Some(b"2".to_vec()));
        assert_eq!(again.bytes(), "before".len() + 1 + "after".len() + 1);
    }
}
