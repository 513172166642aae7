//! Writes a v1 `.c1z` (baton-sdk §4.2/§4.3) the way Baton's syncer does: the sync's rows go
//! into a SQLite database in a private work directory next to the target ([`WorkDir`]) as
//! they arrive, with the sync's checkpoint (`v1_sync_runs.sync_token`) in the same
//! transaction, so an interrupted sync resumes where it stopped. [`C1zWriter::finish`] ends the
//! sync, keeps the newest finished full syncs (the file's earlier ones included) as Baton's
//! cleanup does, packages the database as `C1ZF\0` + one zstd stream and renames it atomically
//! over the target path.

use super::workdir::{WorkDir, dotted, private_file};
use super::{C1Z_V1_MAGIC, ksuid, reader, schema, timefmt};
use crate::{Result, annotations, ids, pb};
use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Local};
use prost::Message;
use rusqlite::backup::Backup;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// zstd level used for the payload. Its window (2 MiB at level 3) is far below the readers'
/// 128 MiB limit, and long-distance matching stays off.
pub const ZSTD_LEVEL: i32 = 3;

const UPSERT_RESOURCE_TYPE: &str = "insert into v1_resource_types
        (external_id, data, sync_id, discovered_at)
    values (?1, ?2, ?3, ?4)
    on conflict (external_id, sync_id) do update set
        data = excluded.data,
        discovered_at = excluded.discovered_at";

const UPSERT_RESOURCE: &str = "insert into v1_resources
        (resource_type_id, external_id, parent_resource_type_id, parent_resource_id,
         data, sync_id, discovered_at)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7)
    on conflict (external_id, sync_id) do update set
        resource_type_id = excluded.resource_type_id,
        parent_resource_type_id = excluded.parent_resource_type_id,
        parent_resource_id = excluded.parent_resource_id,
        data = excluded.data,
        discovered_at = excluded.discovered_at";

const UPSERT_ENTITLEMENT: &str = "insert into v1_entitlements
        (resource_type_id, resource_id, external_id, data, sync_id, discovered_at)
    values (?1, ?2, ?3, ?4, ?5, ?6)
    on conflict (external_id, sync_id) do update set
        resource_type_id = excluded.resource_type_id,
        resource_id = excluded.resource_id,
        data = excluded.data,
        discovered_at = excluded.discovered_at";

// A re-put without a GrantExpandable keeps the row's expansion and needs_expansion (the
// grant-expansion phase rewrites grants whose blobs no longer carry the annotation).
const UPSERT_GRANT: &str = "insert into v1_grants
        (resource_type_id, resource_id, entitlement_id, principal_resource_type_id,
         principal_resource_id, external_id, expansion, needs_expansion, data, sync_id,
         discovered_at)
    values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
    on conflict (external_id, sync_id) do update set
        resource_type_id = excluded.resource_type_id,
        resource_id = excluded.resource_id,
        entitlement_id = excluded.entitlement_id,
        principal_resource_type_id = excluded.principal_resource_type_id,
        principal_resource_id = excluded.principal_resource_id,
        expansion = coalesce(excluded.expansion, v1_grants.expansion),
        needs_expansion = case when excluded.expansion is not null
            then excluded.needs_expansion else v1_grants.needs_expansion end,
        data = excluded.data,
        discovered_at = excluded.discovered_at";

const UPSERT_ASSET: &str = "insert into v1_assets
        (external_id, content_type, data, sync_id, discovered_at)
    values (?1, ?2, ?3, ?4, ?5)
    on conflict (external_id, sync_id) do update set
        content_type = excluded.content_type,
        data = excluded.data,
        discovered_at = excluded.discovered_at";

/// How a writer treats the file it replaces and work it finds left over.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Finished full syncs kept in the file, the new one included (Baton's default: 2,
    /// `BATON_KEEP_SYNC_COUNT`); at least 1.
    pub keep_syncs: usize,
    /// An unfinished sync left in the work directory is resumed when it started less than this
    /// long ago (Baton: 7 days) and was made by the same `identity`; `None` never resumes.
    pub resume_within: Option<Duration>,
    /// Who makes the sync (e.g. the API's origin and a hash of the credential): work left by
    /// another identity is discarded, never mixed in.
    pub identity: String,
    /// `v1_sync_runs.sync_type`: `full`, or `partial` / `resources_only` for a sync that covers
    /// part of the workspace (a reader must not take what it left out as deleted).
    pub sync_type: &'static str,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            keep_syncs: 2,
            resume_within: None,
            identity: String::new(),
            sync_type: "full",
        }
    }
}

/// Batches are committed together at most this often: a commit per page of a listing was
/// most of a large sync's time, and a sync killed in between loses this much work at most.
const GROUP_COMMIT: Duration = Duration::from_millis(100);

/// A fresh sync's database is built in memory until it holds this many bytes or has run for
/// [`MEMORY_FOR`]; then it moves to the work directory, where a crash no longer loses it. A
/// small sync so never writes a database file but the one it delivers, and a writer dropped
/// before (an error, a deadline, Ctrl-C) moves its work there too: only a kill or a crash in
/// a sync's first seconds loses what it had done.
pub const MEMORY_LIMIT: u64 = 16 << 20;

/// See [`MEMORY_LIMIT`].
pub const MEMORY_FOR: Duration = Duration::from_secs(2);

/// Baton resumes unfinished syncs younger than this.
pub const RESUME_WITHIN: Duration = Duration::from_secs(7 * 24 * 3600);

/// How the writer's sync began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Fresh,
    /// An interrupted sync, with the checkpoint it last recorded.
    Resumed {
        checkpoint: String,
    },
}

/// Builds one v1 `.c1z`: the previous file's finished syncs plus the one being written.
///
/// Every `put_*` call (and every [`Batch`]) is all or nothing, and upserts on
/// `(external_id, sync_id)`: a second put of the same id replaces the row (keeping its
/// rowid, hence its position in reads). A call that fails writes nothing. Batches are
/// committed to disk together, at most [`GROUP_COMMIT`] apart (and when the writer finishes
/// or is dropped), so a crash loses the last fraction of a second of complete batches, never
/// part of one.
pub struct C1zWriter {
    // Field order matters: the connection closes before the work directory goes.
    conn: Connection,
    work: Option<WorkDir>,
    target: PathBuf,
    dir: PathBuf,
    sync_id: String,
    keep_syncs: usize,
    start: Start,
    /// Whether a checkpoint was recorded: then a dropped writer leaves its work to resume.
    resumable: bool,
    /// The last checkpoint, while the database is in memory: written with it when it moves to
    /// disk (until then nothing can resume from it, and an update per page cost a small sync
    /// more than the page's rows).
    pending_checkpoint: Option<String>,
    /// When the transaction that batches go into began (`None`: none is open).
    open_since: Option<std::time::Instant>,
    /// Since when the database has been in memory (`None`: it is the work directory's file).
    in_memory: Option<std::time::Instant>,
    /// Who makes the sync (written beside the database when it reaches the disk).
    identity: String,
    /// Whether the database in memory is due to move to disk, and how often it was asked.
    memory_check: MemoryCheck,
}

#[derive(Default)]
struct MemoryCheck {
    due: std::cell::Cell<bool>,
    calls: std::cell::Cell<u32>,
}

impl std::fmt::Debug for C1zWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C1zWriter")
            .field("target", &self.target)
            .field("sync_id", &self.sync_id)
            .field("start", &self.start)
            .finish()
    }
}

impl Drop for C1zWriter {
    /// Work that can be resumed stays (private to its owner); anything else is removed.
    fn drop(&mut self) {
        // Complete batches are kept for the sync that resumes this one.
        let _ = self.flush();
        if self.resumable && self.in_memory.is_some() {
            let _ = self.move_to_disk();
        }
        if (!self.resumable || self.in_memory.is_some())
            && let Some(work) = self.work.take()
        {
            work.remove();
        }
    }
}

impl C1zWriter {
    /// Prepares a new sync that will replace `path` on [`finish`](Self::finish), with the
    /// default options (no resuming).
    pub fn create(path: &Path) -> Result<Self> {
        Self::open(path, &WriterOptions::default())
    }

    /// Prepares the sync that will replace `path`: resumes the interrupted one left in the work
    /// directory when `options` allow, else starts a new one on top of the finished syncs
    /// already in `path` (a file that cannot be read as a `.c1z` is not carried over).
    ///
    /// Fails early, naming the path, if the directory of `path` does not exist or is not
    /// writable, if `path` is a directory, or if another writer holds the work directory. A
    /// failed or dropped writer leaves an existing file at `path` untouched.
    pub fn open(path: &Path, options: &WriterOptions) -> Result<Self> {
        let dir = target_dir(path)?;
        let work = WorkDir::open(&dir, path)?;
        let resumed = match options.resume_within {
            Some(within) => resumable(&work, &options.identity, within),
            None => None,
        };
        let (conn, sync_id, start, in_memory) = match resumed {
            Some((conn, sync_id, checkpoint)) => {
                (conn, sync_id, Start::Resumed { checkpoint }, false)
            }
            None => {
                work.clear()?;
                let (conn, in_memory) = fresh_db(&work, path)?;
                if !in_memory {
                    write_owner(&work, &options.identity)?;
                }
                let sync_id = ksuid::new();
                conn.execute(
                    "insert into v1_sync_runs
                        (sync_id, started_at, ended_at, sync_token, sync_type, parent_sync_id,
                         linked_sync_id, supports_diff, grants_backfilled, stats)
                     values (?1, ?2, null, '', ?3, '', '', 0, 1, null)",
                    params![sync_id, timefmt::now_db_time(), options.sync_type],
                )
                .context("recording the new sync run")?;
                (conn, sync_id, Start::Fresh, in_memory)
            }
        };
        Ok(Self {
            conn,
            work: Some(work),
            target: path.to_path_buf(),
            dir,
            sync_id,
            keep_syncs: options.keep_syncs.max(1),
            resumable: matches!(start, Start::Resumed { .. }),
            pending_checkpoint: None,
            start,
            open_since: None,
            in_memory: in_memory.then(std::time::Instant::now),
            identity: options.identity.clone(),
            memory_check: MemoryCheck::default(),
        })
    }

    /// Whether the work is in the work directory's database (where a crash does not lose it).
    pub fn on_disk(&self) -> bool {
        self.in_memory.is_none()
    }

    /// Moves a database that is still in memory to the work directory (complete batches
    /// only), as [`MEMORY_LIMIT`] describes.
    pub fn move_to_disk(&mut self) -> Result<()> {
        if self.work.is_none() || self.in_memory.is_none() {
            return Ok(());
        }
        // Commits the open batches too. Built now, while the database is small: on disk they
        // are kept up to date (see `schema::DEFERRED_IN_MEMORY`).
        self.build_indexes_left_out_in_memory()?;
        if let Some(token) = self.pending_checkpoint.take() {
            self.conn
                .execute(CHECKPOINT, params![token, self.sync_id])
                .context("recording the sync's checkpoint")?;
        }
        let work = self.work.as_ref().expect("checked above");
        let db = work.db();
        {
            let image = self.conn.serialize(rusqlite::MAIN_DB)?;
            let mut file = private_file(&db)?;
            file.set_len(0)?;
            file.write_all(&image)
                .with_context(|| format!("writing {}", db.display()))?;
        }
        let conn = open_db(&db)?;
        write_owner(work, &self.identity)?;
        self.conn = conn;
        self.in_memory = None;
        Ok(())
    }

    /// Whether the database in memory has outgrown it (see [`MEMORY_LIMIT`]): the next batch
    /// after a group commit moves it to disk. A host moves its own scratch state beside it
    /// first (once this says yes, it says so until the move).
    pub fn due_for_disk(&self) -> Result<bool> {
        let Some(since) = self.in_memory else {
            return Ok(false);
        };
        if self.memory_check.due.get() || since.elapsed() >= MEMORY_FOR {
            self.memory_check.due.set(true);
            return Ok(true);
        }
        // The size is looked up every few calls (a batch adds far less than the headroom).
        let calls = self.memory_check.calls.get().wrapping_add(1);
        self.memory_check.calls.set(calls);
        if !calls.is_multiple_of(16) {
            return Ok(false);
        }
        let bytes: i64 = self
            .conn
            .prepare_cached(
                "select page_count * page_size from pragma_page_count(), pragma_page_size()",
            )?
            .query_row([], |r| r.get(0))?;
        self.memory_check.due.set(bytes as u64 > MEMORY_LIMIT);
        Ok(self.memory_check.due.get())
    }

    /// Builds the indexes a sync in progress does without ([`schema::DEFERRED_INDEXES`] and
    /// [`schema::DEFERRED_IN_MEMORY`]), if they are missing.
    fn build_deferred_indexes(&mut self) -> Result<()> {
        self.build_indexes(schema::is_built_later)
    }

    /// Builds the indexes a database in memory does without ([`schema::DEFERRED_IN_MEMORY`]),
    /// if they are missing: before it moves to disk, and before grant expansion.
    pub(super) fn build_indexes_left_out_in_memory(&mut self) -> Result<()> {
        self.build_indexes(schema::is_deferred_in_memory)
    }

    fn build_indexes(&mut self, which: impl Fn(&str) -> bool) -> Result<()> {
        self.flush()?;
        for stmt in schema::DDL.iter().filter(|s| which(s)) {
            self.conn
                .execute(stmt, [])
                .with_context(|| format!("building an index: {stmt}"))?;
        }
        Ok(())
    }

    /// Commits the batches written so far.
    pub fn flush(&mut self) -> Result<()> {
        if self.open_since.take().is_some() {
            run(&self.conn, "commit").context("committing batches of rows")?;
        }
        Ok(())
    }

    /// The sync id (a KSUID) every row of this sync carries.
    pub fn sync_id(&self) -> &str {
        &self.sync_id
    }

    /// The path the file will be written to.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// How the sync began (fresh, or resumed from a checkpoint).
    pub fn start(&self) -> &Start {
        &self.start
    }

    /// The private work directory (a host may keep the sync's own scratch files there: they
    /// go with it).
    pub fn work_dir(&self) -> &Path {
        self.work.as_ref().map_or(&self.dir, |w| w.path())
    }

    /// When this sync started, as stored.
    pub fn started_at(&self) -> Result<String> {
        Ok(self.conn.query_row(
            "select started_at from v1_sync_runs where sync_id = ?1",
            params![self.sync_id],
            |r| r.get(0),
        )?)
    }

    /// A batch: rows and a checkpoint kept together, or not at all (a savepoint inside the
    /// transaction that [`GROUP_COMMIT`] ends).
    pub fn batch(&mut self) -> Result<Batch<'_>> {
        if self.open_since.is_none() && self.due_for_disk()? {
            self.move_to_disk()?;
        }
        if self.open_since.is_none() {
            run(&self.conn, "begin")?;
            self.open_since = Some(std::time::Instant::now());
        }
        run(&self.conn, "savepoint batch")?;
        Ok(Batch {
            conn: &self.conn,
            sync_id: &self.sync_id,
            now: std::cell::OnceCell::new(),
            checkpointed: &mut self.resumable,
            checkpoint: None,
            pending_checkpoint: self
                .in_memory
                .is_some()
                .then_some(&mut self.pending_checkpoint),
            open_since: &mut self.open_since,
            done: false,
        })
    }

    /// Upserts `items` in one transaction, each with `put`.
    fn put_each<T>(
        &mut self,
        items: &[T],
        put: impl Fn(&mut Batch<'_>, &T) -> Result<()>,
    ) -> Result<()> {
        let mut b = self.batch()?;
        for item in items {
            put(&mut b, item)?;
        }
        b.commit()
    }

    /// Upserts resource types (`external_id` = `ResourceType.id`).
    pub fn put_resource_types(&mut self, items: &[pb::ResourceType]) -> Result<()> {
        self.put_each(items, |b, rt| b.put_resource_type(rt))
    }

    /// Upserts resources (`external_id` = `"<resource_type>:<resource_id>"`; the parent
    /// columns are NULL when there is no parent).
    pub fn put_resources(&mut self, items: &[pb::Resource]) -> Result<()> {
        self.put_each(items, |b, r| b.put_resource(r))
    }

    /// Upserts entitlements (`external_id` = `Entitlement.id`; resource columns from the
    /// embedded resource).
    pub fn put_entitlements(&mut self, items: &[pb::Entitlement]) -> Result<()> {
        self.put_each(items, |b, e| b.put_entitlement(e))
    }

    /// Upserts grants (see [`Batch::put_grant`]).
    pub fn put_grants(&mut self, items: &[pb::Grant]) -> Result<()> {
        self.put_each(items, |b, g| b.put_grant(g))
    }

    /// Upserts an asset (`external_id` = `AssetRef.id`, raw bytes in `data`).
    pub fn put_asset(&mut self, asset_id: &str, content_type: &str, data: &[u8]) -> Result<()> {
        if asset_id.is_empty() {
            bail!("asset with an empty id");
        }
        let now = timefmt::now_db_time();
        self.conn
            .prepare_cached(UPSERT_ASSET)?
            .execute(params![asset_id, content_type, data, self.sync_id, now])
            .with_context(|| format!("writing asset {asset_id:?}"))?;
        Ok(())
    }

    /// This sync's resource types, in the order they were written.
    pub fn resource_types(&self) -> Result<Vec<pb::ResourceType>> {
        self.decode_all("select data from v1_resource_types where sync_id = ?1 order by id")
    }

    /// A resource of this sync.
    pub fn resource(&self, resource_type: &str, id: &str) -> Result<Option<pb::Resource>> {
        self.decode_one(
            "select data from v1_resources where external_id = ?1 and sync_id = ?2",
            &ids::resource_key(resource_type, id),
        )
    }

    /// An entitlement of this sync.
    pub fn entitlement(&self, id: &str) -> Result<Option<pb::Entitlement>> {
        self.decode_one(
            "select data from v1_entitlements where external_id = ?1 and sync_id = ?2",
            id,
        )
    }

    /// A grant of this sync.
    pub fn grant(&self, id: &str) -> Result<Option<pb::Grant>> {
        self.decode_one(
            "select data from v1_grants where external_id = ?1 and sync_id = ?2",
            id,
        )
    }

    /// Up to `limit` resources of this sync (of type `of_type`, when given) stored after row
    /// `after`, with their row ids, in row order: how a sync walks its resources without
    /// holding them all.
    pub fn resources_after(
        &self,
        after: i64,
        limit: usize,
        of_type: Option<&str>,
    ) -> Result<Vec<(i64, pb::Resource)>> {
        let mut stmt = self.conn.prepare_cached(match of_type {
            None => RESOURCES_AFTER,
            Some(_) => RESOURCES_OF_TYPE_AFTER,
        })?;
        let row = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?));
        let rows: Vec<_> = match of_type {
            None => stmt
                .query_map(params![self.sync_id, after, limit as i64], row)?
                .collect(),
            Some(t) => stmt
                .query_map(params![self.sync_id, after, limit as i64, t], row)?
                .collect(),
        };
        let mut out = Vec::new();
        for row in rows {
            let (id, data) = row?;
            let resource = pb::Resource::decode(data.as_slice())
                .with_context(|| format!("decoding resource row {id}"))?;
            out.push((id, resource));
        }
        Ok(out)
    }

    /// The resource of this sync stored in row `row`.
    pub fn resource_row(&self, row: i64) -> Result<Option<pb::Resource>> {
        let data: Option<Vec<u8>> = self
            .conn
            .prepare_cached("select data from v1_resources where id = ?1 and sync_id = ?2")?
            .query_row(params![row, self.sync_id], |r| r.get(0))
            .optional()?;
        data.map(|d| {
            pb::Resource::decode(d.as_slice())
                .with_context(|| format!("decoding resource row {row}"))
        })
        .transpose()
    }

    /// Resources of this sync per type, and the entitlement and grant counts.
    pub fn counts(&self) -> Result<Counts> {
        let mut stmt = self.conn.prepare(
            "select resource_type_id, count(*) from v1_resources where sync_id = ?1
             group by resource_type_id",
        )?;
        let resources = stmt
            .query_map(params![self.sync_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let count = |table: &str| -> Result<u64> {
            let n: i64 = self.conn.query_row(
                &format!("select count(*) from {table} where sync_id = ?1"),
                params![self.sync_id],
                |r| r.get(0),
            )?;
            Ok(n as u64)
        };
        Ok(Counts {
            resources,
            entitlements: count(schema::ENTITLEMENTS)?,
            grants: count(schema::GRANTS)?,
        })
    }

    /// Deletes resources (by `"<type>:<id>"`) and resource types of this sync.
    pub fn delete(&mut self, resources: &[String], resource_types: &[String]) -> Result<()> {
        self.flush()?;
        let tx = self.conn.transaction()?;
        for key in resources {
            tx.prepare_cached("delete from v1_resources where external_id = ?1 and sync_id = ?2")?
                .execute(params![key, self.sync_id])?;
        }
        for id in resource_types {
            tx.prepare_cached(
                "delete from v1_resource_types where external_id = ?1 and sync_id = ?2",
            )?
            .execute(params![id, self.sync_id])?;
        }
        tx.commit().context("deleting rows")
    }

    /// Deletes this sync's grants whose entitlement it never wrote; returns up to `sample` of
    /// their ids and how many there were.
    pub fn drop_dangling_grants(&mut self, sample: usize) -> Result<(Vec<String>, usize)> {
        let dangling = "from v1_grants g where g.sync_id = ?1 and not exists
            (select 1 from v1_entitlements e where e.external_id = g.entitlement_id
             and e.sync_id = ?1)";
        let ids: Vec<String> = self
            .conn
            .prepare(&format!(
                "select g.external_id {dangling} order by g.id limit ?2"
            ))?
            .query_map(params![self.sync_id, sample as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let n = self.conn.execute(
            &format!("delete from v1_grants where id in (select g.id {dangling})"),
            params![self.sync_id],
        )?;
        Ok((ids, n))
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    fn decode_one<M: Message + Default>(&self, sql: &str, key: &str) -> Result<Option<M>> {
        let data: Option<Vec<u8>> = self
            .conn
            .prepare_cached(sql)?
            .query_row(params![key, self.sync_id], |r| r.get(0))
            .optional()?;
        data.map(|d| M::decode(d.as_slice()).with_context(|| format!("decoding {key:?}")))
            .transpose()
    }

    fn decode_all<M: Message + Default>(&self, sql: &str) -> Result<Vec<M>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![self.sync_id], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for data in rows {
            out.push(M::decode(data?.as_slice())?);
        }
        Ok(out)
    }

    /// Ends the sync (`ended_at`, supports_diff=1, grants_backfilled=1, stats NULL, its session
    /// rows cleared), keeps the newest `keep_syncs` finished full syncs, writes `C1ZF\0` + one
    /// zstd stream of the database to a temp file in the target directory, fsyncs it, renames it
    /// over the target and removes the work directory. Returns the target path. On error the
    /// target is untouched.
    pub fn finish(
        mut self,
        started_at: DateTime<Local>,
        ended_at: DateTime<Local>,
    ) -> Result<PathBuf> {
        if ended_at < started_at {
            bail!(
                "cannot finish .c1z {}: sync ended ({}) before it started ({})",
                self.target.display(),
                timefmt::format_db_time(&ended_at),
                timefmt::format_db_time(&started_at)
            );
        }
        self.flush()?;
        self.build_deferred_indexes()?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "update v1_sync_runs set started_at = ?2, ended_at = ?3, sync_token = '',
                 supports_diff = 1, grants_backfilled = 1, stats = null
             where sync_id = ?1",
            params![
                self.sync_id,
                timefmt::format_db_time(&started_at),
                timefmt::format_db_time(&ended_at)
            ],
        )
        .context("recording the sync run")?;
        // The session store is per-sync scratch space, cleared at the end of a sync.
        tx.execute(
            "delete from v1_connector_sessions where sync_id = ?1",
            params![self.sync_id],
        )?;
        let removed = cleanup(&tx, &self.sync_id, self.keep_syncs)?;
        tx.commit().context("committing the finished sync")?;

        let work = self
            .work
            .take()
            .expect("a writer has its work directory until it finishes");
        // The sync is recorded as finished: whatever happens now, nothing is left to resume.
        let packaged = self.package(&work, removed);
        work.remove();
        packaged?;
        Ok(self.target.clone())
    }

    /// Writes the finished database over the target (see [`C1zWriter::finish`]).
    fn package(&mut self, work: &WorkDir, compact: bool) -> Result<()> {
        let mut conn = std::mem::replace(&mut self.conn, Connection::open_in_memory()?);
        if self.in_memory.is_some() {
            // Rows of dropped syncs leave free pages: compact first.
            if compact {
                conn.execute_batch("vacuum")
                    .context("compacting the database")?;
            }
            let image = conn.serialize(rusqlite::MAIN_DB)?;
            return self.write_target(&mut &image[..], image.len() as u64);
        }
        // The file Baton reads is a rollback-journal database, whole in one file: this moves
        // the write-ahead log into the database and marks it so (a copy made by `vacuum into`
        // takes the mode too).
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
            .context("moving the write-ahead log into the database")?;
        if !mode.eq_ignore_ascii_case("delete") {
            bail!("SQLite kept journal_mode={mode} instead of a rollback journal");
        }
        let packed = if compact {
            // Rows of dropped syncs leave free pages: copy the database compactly first.
            let packed = work.path().join("packed");
            let _ = fs::remove_file(&packed);
            conn.execute("vacuum into ?1", params![packed.to_string_lossy()])
                .context("compacting the database")?;
            packed
        } else {
            work.db()
        };
        conn.close()
            .map_err(|(_, e)| e)
            .context("closing the SQLite database")?;
        let mut input =
            File::open(&packed).with_context(|| format!("opening {}", packed.display()))?;
        let len = input.metadata()?.len();
        self.write_target(&mut input, len)
    }

    /// Writes `C1ZF\0` and the zstd stream of the database (`len` bytes read from `input`)
    /// to a temp file beside the target, fsyncs it and renames it over the target.
    fn write_target(&self, input: &mut impl io::Read, len: u64) -> Result<()> {
        let name = self.target.file_name().unwrap_or_default();
        let mut out = tempfile::Builder::new()
            .prefix(&dotted(name, "."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .with_context(|| format!("creating a temp file in {}", self.dir.display()))?;
        write_envelope(input, len, out.as_file_mut())
            .with_context(|| format!("writing {}", out.path().display()))?;
        out.as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", out.path().display()))?;
        out.persist(&self.target)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming the new .c1z over {}", self.target.display()))?;
        // Make the rename durable; failure here is not fatal (the file is complete).
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Row counts of the sync being written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Resource type id → resources of that type.
    pub resources: Vec<(String, u64)>,
    pub entitlements: u64,
    pub grants: u64,
}

/// Rows written all or nothing, with the sync's checkpoint.
pub struct Batch<'w> {
    conn: &'w Connection,
    sync_id: &'w str,
    /// When the batch's rows were found (formatted once, at its first row).
    now: std::cell::OnceCell<String>,
    checkpointed: &'w mut bool,
    /// The batch's checkpoint, kept for the writer's `pending_checkpoint` (in memory only).
    checkpoint: Option<String>,
    pending_checkpoint: Option<&'w mut Option<String>>,
    open_since: &'w mut Option<std::time::Instant>,
    /// Released into the open transaction (else rolled back when dropped).
    done: bool,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ =
                run(self.conn, "rollback to batch").and_then(|_| run(self.conn, "release batch"));
        }
    }
}

impl Batch<'_> {
    fn now(&self) -> &str {
        self.now.get_or_init(timefmt::now_db_time)
    }

    pub fn put_resource_type(&mut self, rt: &pb::ResourceType) -> Result<()> {
        if rt.id.is_empty() {
            bail!(
                "resource type with an empty id (display name {:?})",
                rt.display_name
            );
        }
        self.conn
            .prepare_cached(UPSERT_RESOURCE_TYPE)?
            .execute(params![rt.id, rt.encode_to_vec(), self.sync_id, self.now()])
            .with_context(|| format!("writing resource type {:?}", rt.id))?;
        Ok(())
    }

    pub fn put_resource(&mut self, r: &pb::Resource) -> Result<()> {
        let id = resource_id_of(r)
            .with_context(|| format!("invalid resource (display name {:?})", r.display_name))?;
        let parent = r
            .parent_resource_id
            .as_ref()
            .filter(|p| !p.resource_type.is_empty() && !p.resource.is_empty());
        let key = ids::resource_key(&id.resource_type, &id.resource);
        self.conn
            .prepare_cached(UPSERT_RESOURCE)?
            .execute(params![
                id.resource_type,
                key,
                parent.map(|p| p.resource_type.as_str()),
                parent.map(|p| p.resource.as_str()),
                r.encode_to_vec(),
                self.sync_id,
                self.now()
            ])
            .with_context(|| format!("writing resource {key:?}"))?;
        Ok(())
    }

    pub fn put_entitlement(&mut self, e: &pb::Entitlement) -> Result<()> {
        if e.id.is_empty() {
            bail!(
                "entitlement with an empty id (display name {:?})",
                e.display_name
            );
        }
        let res = e
            .resource
            .as_ref()
            .ok_or_else(|| anyhow!("entitlement {:?} has no resource", e.id))
            .and_then(|r| resource_id_of(r).with_context(|| format!("entitlement {:?}", e.id)))?;
        self.conn
            .prepare_cached(UPSERT_ENTITLEMENT)?
            .execute(params![
                res.resource_type,
                res.resource,
                e.id,
                e.encode_to_vec(),
                self.sync_id,
                self.now()
            ])
            .with_context(|| format!("writing entitlement {:?}", e.id))?;
        Ok(())
    }

    /// Upserts a grant. A `GrantExpandable` annotation is removed from the stored blob and
    /// kept in the `expansion` column; `needs_expansion` is 1 when it names at least one
    /// non-blank entitlement id. A re-put of an existing grant without a `GrantExpandable`
    /// replaces everything but keeps the row's `expansion`/`needs_expansion`.
    pub fn put_grant(&mut self, g: &pb::Grant) -> Result<()> {
        let entitlement = g
            .entitlement
            .as_ref()
            .ok_or_else(|| anyhow!("invalid grant {:?}: grant has no entitlement", g.id))?;
        let principal = g
            .principal
            .as_ref()
            .ok_or_else(|| anyhow!("invalid grant {:?}: grant has no principal", g.id))?;
        let principal_id = resource_id_of(principal)
            .with_context(|| format!("invalid grant {:?}: grant's principal", g.id))?;
        self.put_encoded_grant(&EncodedGrant {
            id: &g.id,
            entitlement: &EncodedEntitlement::of(entitlement)?,
            principal: (&principal_id.resource_type, &principal_id.resource),
            principal_data: &principal.encode_to_vec(),
            annotations: &g.annotations,
            sources: g.sources.as_ref(),
        })
    }

    /// Upserts a grant whose entitlement and principal come encoded: a sync embeds each of them
    /// in many grants, and encodes them once. The blob is the grant's encoding, as
    /// [`Batch::put_grant`] writes it.
    pub fn put_encoded_grant(&mut self, g: &EncodedGrant<'_>) -> Result<()> {
        let row = grant_row(g).with_context(|| format!("invalid grant {:?}", g.id))?;
        self.conn
            .prepare_cached(UPSERT_GRANT)?
            .execute(params![
                row.resource_type_id,
                row.resource_id,
                row.entitlement_id,
                row.principal_type,
                row.principal_id,
                row.external_id,
                row.expansion,
                row.needs_expansion,
                row.data,
                self.sync_id,
                self.now()
            ])
            .with_context(|| format!("writing grant {:?}", row.external_id))?;
        Ok(())
    }

    /// Records where the sync stands (Baton's `sync_token`): a sync interrupted after this
    /// batch commits resumes from here.
    pub fn checkpoint(&mut self, token: &str) -> Result<()> {
        if self.pending_checkpoint.is_some() {
            self.checkpoint = Some(token.to_string());
        } else {
            self.conn
                .prepare_cached(CHECKPOINT)?
                .execute(params![token, self.sync_id])
                .context("recording the sync's checkpoint")?;
        }
        *self.checkpointed = true;
        Ok(())
    }

    /// Keeps the batch; it reaches the disk with the next group commit.
    pub fn commit(mut self) -> Result<()> {
        run(self.conn, "release batch").context("committing a batch of rows")?;
        self.done = true;
        if let (Some(pending), Some(token)) =
            (self.pending_checkpoint.as_mut(), self.checkpoint.take())
        {
            **pending = Some(token);
        }
        if self.open_since.is_some_and(|t| t.elapsed() >= GROUP_COMMIT) {
            *self.open_since = None;
            run(self.conn, "commit").context("committing batches of rows")?;
        }
        Ok(())
    }
}

/// Records a sync's checkpoint (Baton's `sync_token`).
const CHECKPOINT: &str = "update v1_sync_runs set sync_token = ?1 where sync_id = ?2";

/// The stored resources of a sync after a row, in row order.
const RESOURCES_AFTER: &str =
    "select id, data from v1_resources where sync_id = ?1 and id > ?2 order by id limit ?3";

/// The same, of one type (the type index holds the row ids in order: no sort).
const RESOURCES_OF_TYPE_AFTER: &str = "select id, data from v1_resources \
     where sync_id = ?1 and id > ?2 and resource_type_id = ?4 order by id limit ?3";

/// Runs one of the statements every batch runs (`begin`, `savepoint`, ...), prepared once per
/// connection: parsing them again for each page cost more than the page's own rows in a small
/// sync.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The directory `path` goes in, checked to exist and `path` not to be a directory.
fn target_dir(path: &Path) -> Result<PathBuf> {
    if path.file_name().is_none() {
        bail!(
            "cannot write .c1z {}: the path has no file name",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "cannot write .c1z {}: {} is not a directory",
            path.display(),
            dir.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "cannot write .c1z {}: directory {} does not exist",
            path.display(),
            dir.display()
        ),
        Err(e) => bail!(
            "cannot write .c1z {}: cannot access directory {}: {e}",
            path.display(),
            dir.display()
        ),
    }
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        bail!(
            "cannot write .c1z {}: the path is a directory",
            path.display()
        );
    }
    Ok(dir)
}

/// The interrupted sync in `work`, if it may be resumed: made by `identity`, unfinished,
/// checkpointed, and started less than `within` ago.
fn resumable(
    work: &WorkDir,
    identity: &str,
    within: Duration,
) -> Option<(Connection, String, String)> {
    let owner = fs::read_to_string(work.path().join("owner")).ok()?;
    if owner != identity || !work.db().exists() {
        return None;
    }
    let conn = open_db(&work.db()).ok()?;
    let (sync_id, started_at, token): (String, String, String) = conn
        .query_row(
            "select sync_id, started_at, sync_token from v1_sync_runs
             where ended_at is null and sync_type = 'full'
             order by started_at desc limit 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ok()?;
    let started = timefmt::parse_db_time(&started_at)?;
    let age = Local::now().signed_duration_since(started).to_std().ok()?;
    (!token.is_empty() && age < within).then_some((conn, sync_id, token))
}

/// A new work database: the previous file's database when it reads as a v1 `.c1z` (its
/// unfinished syncs dropped), else an empty one. It is in memory (`true`) unless the previous
/// file's database is larger than [`MEMORY_LIMIT`].
fn fresh_db(work: &WorkDir, target: &Path) -> Result<(Connection, bool)> {
    if target.exists() {
        match reader::unpack_small(target, MEMORY_LIMIT) {
            Ok(Some(image)) => {
                if let Ok(conn) = memory_db(Some(&image))
                    && carries_over(&conn).unwrap_or(false)
                {
                    return Ok((carried_over(conn)?, true));
                }
            }
            Ok(None) => {
                let db = work.db();
                private_file(&db)?;
                if reader::unpack(target, &db).is_ok()
                    && let Ok(conn) = open_db(&db)
                    && carries_over(&conn).unwrap_or(false)
                {
                    return Ok((carried_over(conn)?, false));
                }
                fs::remove_file(&db)?;
            }
            Err(_) => {}
        }
    }
    Ok((memory_db(None)?, true))
}

/// The previous file's database without its unfinished syncs.
fn carried_over(conn: Connection) -> Result<Connection> {
    conn.execute_batch("delete from v1_sync_runs where ended_at is null or sync_type != 'full'")?;
    Ok(conn)
}

/// A database in memory: a copy of `image` (a previous file's), or a new one with the schema.
fn memory_db(image: Option<&[u8]>) -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    // A new one keeps its pages in the page cache; a copy keeps them in its own buffer,
    // which a large page cache would only duplicate.
    let cache_kib = match image {
        None => {
            small_lookaside(&conn)?;
            copy_schema_into(&mut conn).context("creating the sync's database")?;
            32768
        }
        Some(image) => {
            conn.deserialize_read_exact(rusqlite::MAIN_DB, image, image.len(), false)
                .context("loading the previous syncs into memory")?;
            1024
        }
    };
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    cache_statements(&conn)?;
    Ok(conn)
}

/// Lookaside of a new database in memory (SQLite's fast allocator for its small objects):
/// 8 KiB instead of SQLite's 47 KiB per connection. The writer's statements stay prepared
/// (see [`cache_statements`]), so what SQLite allocates per row is few and small.
const MEMORY_LOOKASIDE: (i32, i32) = (256, 32);

/// Gives a new database in memory a small lookaside (see [`MEMORY_LOOKASIDE`]).
fn small_lookaside(conn: &Connection) -> Result<()> {
    let (size, count) = MEMORY_LOOKASIDE;
    // SAFETY: the handle is this open connection's, no statement of it is running (it was
    // just opened), and with a null buffer SQLite allocates the lookaside itself.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            size,
            count,
        )
    };
    if rc != rusqlite::ffi::SQLITE_OK {
        bail!("SQLite refused to size the database's lookaside (code {rc})");
    }
    Ok(())
}

/// Gives an empty database the schema (but the indexes built later), copied from a database
/// made once per process: running the DDL cost each sync three times as much (a demo-sized
/// sync's largest database cost).
fn copy_schema_into(conn: &mut Connection) -> Result<()> {
    static TEMPLATE: Mutex<Option<Connection>> = Mutex::new(None);
    let mut template = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if template.is_none() {
        *template = Some(schema_template()?);
    }
    let template = template.as_ref().expect("made above");
    Backup::new(template, conn)?.run_to_completion(i32::MAX, Duration::ZERO, None)?;
    Ok(())
}

/// A new database with the schema but the indexes built later (see
/// [`C1zWriter::build_deferred_indexes`]).
fn schema_template() -> Result<Connection> {
    let conn = Connection::open_in_memory()?;
    let tx = conn.unchecked_transaction()?;
    for stmt in schema::DDL.iter().filter(|s| !schema::is_built_later(s)) {
        tx.execute(stmt, [])
            .with_context(|| format!("running DDL: {stmt}"))?;
    }
    tx.commit()?;
    Ok(conn)
}

/// Records who makes the sync, beside its database (a resume checks it).
fn write_owner(work: &WorkDir, identity: &str) -> Result<()> {
    private_file(&work.path().join("owner"))?
        .write_all(identity.as_bytes())
        .with_context(|| format!("writing {}", work.path().display()))
}

/// Whether an existing database has every table and column this writer fills.
fn carries_over(conn: &Connection) -> Result<bool> {
    let tables = reader::table_names(conn)?;
    if !schema::ALL_TABLES
        .iter()
        .all(|t| tables.iter().any(|n| n == t))
    {
        return Ok(false);
    }
    let grants = reader::column_names(conn, schema::GRANTS)?;
    let runs = reader::column_names(conn, schema::SYNC_RUNS)?;
    let has = |cols: &[String], c: &str| cols.iter().any(|n| n == c);
    Ok(has(&grants, "expansion")
        && has(&grants, "needs_expansion")
        && has(&runs, "grants_backfilled")
        && has(&runs, "ingest_invariant_mode"))
}

fn open_db(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening SQLite database {}", path.display()))?;
    // Only this connection uses the file (the work directory is locked): holding the lock
    // saves checking it at every transaction, and the log needs no shared-memory index.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // No fsyncs: the database is scratch until packaged (a crash of the process loses nothing
    // the operating system was handed). Set before the journal mode, whose switch would
    // otherwise cost four.
    conn.pragma_update(None, "synchronous", "OFF")?;
    // Write-ahead log: a batch commits by appending the pages it changed (a rollback journal
    // writes every page twice per commit, which at a commit per page of a listing was most of
    // a large sync's disk traffic). After a crash, SQLite ignores an unfinished batch's frames
    // on the next open.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("SQLite refused journal_mode=WAL (got {mode})");
    }
    // Temporary files in memory: each batch's undo record (a savepoint's sub-journal, the
    // size of the pages one batch changes) was a temp file written at every batch.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The page cache is the database's whole share of memory, whatever the workspace's size.
    conn.pragma_update(None, "cache_size", -32768)?;
    // Copy the log into the database every 40 MiB rather than every 4: a page that many
    // batches change (an index's) is copied once per checkpoint, not once per 4 MiB.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    cache_statements(&conn)?;
    Ok(conn)
}

/// Keeps the writer's statements prepared between uses. The statement cache clears a
/// statement's bindings when it takes it back, and SQLite (built with STAT4) then prepares
/// again any statement whose plan looked at a bound value (`id > ?`, `limit ?`): the walks'
/// and the expansion's queries were parsed and planned anew at every use, which cost twice
/// the query itself. With the query planner stability guarantee a statement keeps the plan
/// it was prepared with (the same plans: nothing here runs ANALYZE).
fn cache_statements(conn: &Connection) -> Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Keeps the newest `keep` finished full syncs (this one among them) and deletes the rows of
/// every other sync; returns whether anything was deleted.
fn cleanup(tx: &Transaction<'_>, current: &str, keep: usize) -> Result<bool> {
    let doomed: Vec<String> = tx
        .prepare(
            "select sync_id from v1_sync_runs where sync_id != ?1 and sync_id not in
                (select sync_id from v1_sync_runs
                 where ended_at is not null and sync_type = 'full'
                 order by ended_at desc, sync_id desc limit ?2)",
        )?
        .query_map(params![current, keep as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for sync in &doomed {
        for table in schema::ALL_TABLES {
            tx.execute(
                &format!("delete from {table} where sync_id = ?1"),
                params![sync],
            )?;
        }
    }
    Ok(!doomed.is_empty())
}

fn write_envelope(input: &mut impl io::Read, len: u64, out: &mut File) -> Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, out);
    w.write_all(C1Z_V1_MAGIC)?;
    let mut enc = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
    enc.include_checksum(true)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(len))?;
    let copied = io::copy(input, &mut enc)?;
    if copied != len {
        bail!("database changed size while compressing ({len} → {copied} bytes)");
    }
    let w = enc.finish()?;
    w.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn resource_id_of(r: &pb::Resource) -> Result<&pb::ResourceId> {
    let id = r.id.as_ref().ok_or_else(|| anyhow!("resource has no id"))?;
    if id.resource_type.is_empty() || id.resource.is_empty() {
        bail!(
            "resource id has an empty part (resource_type {:?}, resource {:?})",
            id.resource_type,
            id.resource
        );
    }
    Ok(id)
}

struct GrantRow<'a> {
    resource_type_id: &'a str,
    resource_id: &'a str,
    entitlement_id: &'a str,
    principal_type: &'a str,
    principal_id: &'a str,
    external_id: &'a str,
    expansion: Option<Vec<u8>>,
    needs_expansion: i64,
    data: Vec<u8>,
}

/// An entitlement as grants embed it: encoded, with what a grant's row says of it.
#[derive(Debug, Clone)]
pub struct EncodedEntitlement {
    pub id: String,
    /// The resource it is on: (type, id).
    pub resource: (String, String),
    pub data: Vec<u8>,
}

impl EncodedEntitlement {
    pub fn of(e: &pb::Entitlement) -> Result<EncodedEntitlement> {
        if e.id.is_empty() {
            bail!("grant's entitlement has an empty id");
        }
        let r = e
            .resource
            .as_ref()
            .ok_or_else(|| anyhow!("grant's entitlement {:?} has no resource", e.id))
            .and_then(|r| resource_id_of(r).context("grant's entitlement resource"))?;
        Ok(EncodedEntitlement {
            id: e.id.clone(),
            resource: (r.resource_type.clone(), r.resource.clone()),
            data: e.encode_to_vec(),
        })
    }
}

/// A grant to store, its entitlement and principal already encoded.
pub struct EncodedGrant<'a> {
    pub id: &'a str,
    pub entitlement: &'a EncodedEntitlement,
    /// The principal's (type, id), and its encoding.
    pub principal: (&'a str, &'a str),
    pub principal_data: &'a [u8],
    pub annotations: &'a [prost_types::Any],
    pub sources: Option<&'a pb::GrantSources>,
}

fn grant_row<'a>(g: &EncodedGrant<'a>) -> Result<GrantRow<'a>> {
    if g.id.is_empty() {
        bail!("grant has an empty id");
    }
    if g.principal.0.is_empty() || g.principal.1.is_empty() {
        bail!(
            "grant's principal: resource id has an empty part (resource_type {:?}, resource {:?})",
            g.principal.0,
            g.principal.1
        );
    }
    // Baton keeps the expansion annotation in its own column, not in the blob.
    let (expansion, needs_expansion, data) =
        if annotations::contains::<pb::GrantExpandable>(g.annotations) {
            let mut kept = g.annotations.to_vec();
            let ge = annotations::remove::<pb::GrantExpandable>(&mut kept).unwrap_or_default();
            let needs = ge.entitlement_ids.iter().any(|id| !id.trim().is_empty());
            (
                Some(ge.encode_to_vec()),
                i64::from(needs),
                grant_blob(g, &kept),
            )
        } else {
            (None, 0, grant_blob(g, g.annotations))
        };
    Ok(GrantRow {
        resource_type_id: &g.entitlement.resource.0,
        resource_id: &g.entitlement.resource.1,
        entitlement_id: &g.entitlement.id,
        principal_type: g.principal.0,
        principal_id: g.principal.1,
        external_id: g.id,
        expansion,
        needs_expansion,
        data,
    })
}

/// The encoding of `pb::Grant` (fields in tag order, as prost writes them) from its parts.
fn grant_blob(g: &EncodedGrant<'_>, annotations: &[prost_types::Any]) -> Vec<u8> {
    use prost::encoding::{self, WireType};
    let embedded = |tag: u32, bytes: &[u8], out: &mut Vec<u8>| {
        encoding::encode_key(tag, WireType::LengthDelimited, out);
        encoding::encode_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    };
    let mut out =
        Vec::with_capacity(g.entitlement.data.len() + g.principal_data.len() + g.id.len() + 32);
    embedded(1, &g.entitlement.data, &mut out);
    embedded(2, g.principal_data, &mut out);
    embedded(3, g.id.as_bytes(), &mut out);
    for a in annotations {
        encoding::message::encode(4, a, &mut out);
    }
    if let Some(sources) = g.sources {
        encoding::message::encode(5, sources, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str, id: &str) -> pb::Resource {
        pb::Resource {
            id: Some(pb::ResourceId {
                resource_type: kind.into(),
                resource: id.into(),
                ..Default::default()
            }),
            display_name: format!("{kind} {id}"),
            ..Default::default()
        }
    }

    /// A walk's query stays prepared from page to page: it is not parsed and planned again
    /// each time the statement cache hands it out with new bindings.
    #[test]
    fn a_walk_reuses_its_prepared_query() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = C1zWriter::create(&dir.path().join("out.c1z")).unwrap();
        let mut after = 0;
        for page in 0..10 {
            let rows: Vec<_> = (0..3)
                .map(|i| resource("user", &format!("u{page}-{i}")))
                .collect();
            w.put_resources(&rows).unwrap();
            let (found, of_type) = (
                w.resources_after(after, 64, None).unwrap(),
                w.resources_after(after, 64, Some("user")).unwrap(),
            );
            assert_eq!((found.len(), of_type.len()), (3, 3));
            after = found.last().unwrap().0;
        }
        for sql in [RESOURCES_AFTER, RESOURCES_OF_TYPE_AFTER] {
            let stmt = w.conn.prepare_cached(sql).unwrap();
            let again = stmt.get_status(rusqlite::StatementStatus::RePrepare);
            assert!(again <= 1, "prepared again {again} times in 10 uses: {sql}");
        }
    }

    /// A new sync's database in memory has a small lookaside (a many-tenant host holds one
    /// such database per tenant syncing): with SQLite's default one (47 KiB), this sync
    /// uses 57 slots at most, more than the small one has.
    #[test]
    fn a_database_in_memory_has_a_small_lookaside() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = C1zWriter::create(&dir.path().join("out.c1z")).unwrap();
        for page in 0..10 {
            let rows: Vec<_> = (0..20)
                .map(|i| resource("user", &format!("u{page}-{i}")))
                .collect();
            w.put_resources(&rows).unwrap();
            w.resources_after(0, 64, Some("user")).unwrap();
        }
        let (mut now, mut most) = (0, 0);
        // SAFETY: a status query on this writer's open connection.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                w.conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_LOOKASIDE_USED,
                &mut now,
                &mut most,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        let (size, count) = MEMORY_LOOKASIDE;
        // SQLite carves the space into slots of `size` and of 128 bytes (3 small per big).
        let big = size * count / (3 * 128 + size);
        let slots = big + (size * count - size * big) / 128;
        assert!(
            most <= slots,
            "{most} lookaside slots in use at most, of {slots}"
        );
        assert!(most > 0, "the lookaside was never used");
    }

    /// A database in memory does without the indexes no query of a sync uses (a page each),
    /// and has them once it moves to disk, where they are kept up to date.
    #[test]
    fn a_database_in_memory_leaves_out_indexes_it_has_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = C1zWriter::create(&dir.path().join("out.c1z")).unwrap();
        let indexes = |w: &C1zWriter| -> Vec<String> {
            let mut stmt = w
                .conn
                .prepare("select name from sqlite_schema where type = 'index'")
                .unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let left_out = schema::DEFERRED_IN_MEMORY;
        assert!(!w.on_disk());
        let before = indexes(&w);
        assert!(
            left_out.iter().all(|i| !before.iter().any(|n| n == i)),
            "{before:?}"
        );
        w.put_resources(&[resource("user", "u1")]).unwrap();
        w.move_to_disk().unwrap();
        let after = indexes(&w);
        assert!(
            left_out.iter().all(|i| after.iter().any(|n| n == i)),
            "{after:?}"
        );
        assert_eq!(w.resources_after(0, 10, None).unwrap().len(), 1);
    }

    /// The blob built from encoded parts is byte for byte prost's encoding of the message.
    #[test]
    fn a_grant_from_encoded_parts_is_encoded_as_the_message_is() {
        let entitlement = pb::Entitlement {
            id: "group:g1:member".into(),
            resource: Some(resource("group", "g1")),
            display_name: "G1 Member".into(),
            slug: "member".into(),
            ..Default::default()
        };
        let principal = resource("user", "u1");
        let other = pb::GrantExpandable {
            entitlement_ids: vec!["group:g2:member".into()],
            shallow: true,
            resource_type_ids: vec!["user".into()],
        };
        let cases = [
            (vec![], None),
            (
                vec![annotations::pack(&pb::ExternalLink {
                    url: "https://x".into(),
                })],
                Some(pb::GrantSources::default()),
            ),
        ];
        for (annotations, sources) in cases {
            let grant = pb::Grant {
                entitlement: Some(entitlement.clone()),
                principal: Some(principal.clone()),
                id: "group:g1:member:user:u1".into(),
                annotations,
                sources,
            };
            let encoded = EncodedEntitlement::of(&entitlement).unwrap();
            let parts = EncodedGrant {
                id: &grant.id,
                entitlement: &encoded,
                principal: ("user", "u1"),
                principal_data: &principal.encode_to_vec(),
                annotations: &grant.annotations,
                sources: grant.sources.as_ref(),
            };
            let row = grant_row(&parts).unwrap();
            assert_eq!(row.data, grant.encode_to_vec());
            assert_eq!(row.expansion, None);
            // The expansion annotation goes to its column, the rest stays in the blob.
            let mut with = grant.annotations.clone();
            with.insert(0, annotations::pack(&other));
            let expanding = EncodedGrant {
                annotations: &with,
                ..parts
            };
            let row = grant_row(&expanding).unwrap();
            assert_eq!(row.data, grant.encode_to_vec());
            assert_eq!(row.expansion, Some(other.encode_to_vec()));
            assert_eq!(row.needs_expansion, 1);
        }
    }
}
