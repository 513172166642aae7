//! Writes a v1 `.c1z` (baton-sdk §4.2/§4.3): a SQLite database built in a temp directory
//! next to the target, packaged on [`C1zWriter::finish`] as `C1ZF\0` + one zstd stream and
//! renamed atomically over the target path.

use crate::{C1Z_V1_MAGIC, Result, annotations, ids, ksuid, pb, schema, timefmt};
use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Local};
use prost::Message;
use rusqlite::{Connection, params};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

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

/// Builds one v1 `.c1z` holding a single finished `full` sync.
///
/// Every `put_*` call runs in one transaction with a prepared statement, and upserts on
/// `(external_id, sync_id)`: a second put of the same id replaces the row (keeping its
/// rowid, hence its position in reads). A call that fails writes nothing.
pub struct C1zWriter {
    // Field order matters: the connection closes before the work directory is removed.
    conn: Connection,
    work: TempDir,
    target: PathBuf,
    dir: PathBuf,
    sync_id: String,
    /// `v1_sync_runs.sync_type`: `full` unless [`C1zWriter::set_sync_type`] says otherwise.
    sync_type: &'static str,
}

impl std::fmt::Debug for C1zWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C1zWriter")
            .field("target", &self.target)
            .field("work", &self.work.path())
            .field("sync_id", &self.sync_id)
            .finish()
    }
}

impl C1zWriter {
    /// Prepares a new .c1z that will replace `path` on [`finish`](Self::finish).
    ///
    /// Fails early, naming the path, if the directory of `path` does not exist or is not
    /// writable, or if `path` is a directory. The database is built in a temp directory in
    /// the same directory as `path`; a failed or dropped writer leaves an existing file at
    /// `path` untouched and removes its temp files.
    pub fn create(path: &Path) -> Result<Self> {
        let file_name = path.file_name().ok_or_else(|| {
            anyhow!(
                "cannot write .c1z {}: the path has no file name",
                path.display()
            )
        })?;
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

        let work = tempfile::Builder::new()
            .prefix(&temp_prefix(file_name))
            .suffix(".work")
            .tempdir_in(&dir)
            .with_context(|| {
                format!(
                    "cannot write .c1z {}: directory {} is not writable",
                    path.display(),
                    dir.display()
                )
            })?;
        let db_path = work.path().join("db");
        let conn = Connection::open(&db_path)
            .with_context(|| format!("creating SQLite database {}", db_path.display()))?;
        init_db(&conn)
            .with_context(|| format!("initialising SQLite database {}", db_path.display()))?;

        Ok(Self {
            conn,
            work,
            target: path.to_path_buf(),
            dir,
            sync_id: ksuid::new(),
            sync_type: "full",
        })
    }

    /// Records the sync as `partial` (a targeted sync) or `resources_only` instead of
    /// `full`: a reader must not take what a partial sync left out as deleted.
    pub fn set_sync_type(&mut self, sync_type: &'static str) {
        self.sync_type = sync_type;
    }

    /// The sync id (a fresh KSUID) every row of this file carries.
    pub fn sync_id(&self) -> &str {
        &self.sync_id
    }

    /// The path the file will be written to.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Upserts resource types (`external_id` = `ResourceType.id`).
    pub fn put_resource_types(&mut self, items: &[pb::ResourceType]) -> Result<()> {
        for rt in items {
            if rt.id.is_empty() {
                bail!(
                    "resource type with an empty id (display name {:?})",
                    rt.display_name
                );
            }
        }
        let now = timefmt::now_db_time();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(UPSERT_RESOURCE_TYPE)?;
            for rt in items {
                stmt.execute(params![rt.id, rt.encode_to_vec(), self.sync_id, now])
                    .with_context(|| format!("writing resource type {:?}", rt.id))?;
            }
        }
        tx.commit().context("committing resource types")?;
        Ok(())
    }

    /// Upserts resources (`external_id` = `"<resource_type>:<resource_id>"`; the parent
    /// columns are NULL when there is no parent).
    pub fn put_resources(&mut self, items: &[pb::Resource]) -> Result<()> {
        let mut rows = Vec::with_capacity(items.len());
        for r in items {
            let id = resource_id_of(r)
                .with_context(|| format!("invalid resource (display name {:?})", r.display_name))?;
            let parent = r
                .parent_resource_id
                .as_ref()
                .filter(|p| !p.resource_type.is_empty() && !p.resource.is_empty());
            rows.push((
                id.resource_type.as_str(),
                ids::resource_key(&id.resource_type, &id.resource),
                parent.map(|p| p.resource_type.as_str()),
                parent.map(|p| p.resource.as_str()),
                r.encode_to_vec(),
            ));
        }
        let now = timefmt::now_db_time();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(UPSERT_RESOURCE)?;
            for (rt, key, parent_type, parent_id, data) in &rows {
                stmt.execute(params![
                    rt,
                    key,
                    parent_type,
                    parent_id,
                    data,
                    self.sync_id,
                    now
                ])
                .with_context(|| format!("writing resource {key:?}"))?;
            }
        }
        tx.commit().context("committing resources")?;
        Ok(())
    }

    /// Upserts entitlements (`external_id` = `Entitlement.id`; resource columns from the
    /// embedded resource).
    pub fn put_entitlements(&mut self, items: &[pb::Entitlement]) -> Result<()> {
        let mut rows = Vec::with_capacity(items.len());
        for e in items {
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
                .and_then(|r| {
                    resource_id_of(r).with_context(|| format!("entitlement {:?}", e.id))
                })?;
            rows.push((res, e.id.as_str(), e.encode_to_vec()));
        }
        let now = timefmt::now_db_time();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(UPSERT_ENTITLEMENT)?;
            for (res, id, data) in &rows {
                stmt.execute(params![
                    res.resource_type,
                    res.resource,
                    id,
                    data,
                    self.sync_id,
                    now
                ])
                .with_context(|| format!("writing entitlement {id:?}"))?;
            }
        }
        tx.commit().context("committing entitlements")?;
        Ok(())
    }

    /// Upserts grants. A `GrantExpandable` annotation is removed from the stored blob and
    /// kept in the `expansion` column; `needs_expansion` is 1 when it names at least one
    /// non-blank entitlement id. A re-put of an existing grant without a `GrantExpandable`
    /// replaces everything but keeps the row's `expansion`/`needs_expansion`.
    pub fn put_grants(&mut self, items: &[pb::Grant]) -> Result<()> {
        let mut rows = Vec::with_capacity(items.len());
        for g in items {
            rows.push(grant_row(g).with_context(|| format!("invalid grant {:?}", g.id))?);
        }
        let now = timefmt::now_db_time();
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(UPSERT_GRANT)?;
            for row in &rows {
                stmt.execute(params![
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
                    now
                ])
                .with_context(|| format!("writing grant {:?}", row.external_id))?;
            }
        }
        tx.commit().context("committing grants")?;
        Ok(())
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

    /// Records the sync run (type `full`, token `""`, supports_diff=1, grants_backfilled=1,
    /// stats NULL), closes the database, writes `C1ZF\0` + one zstd stream of it to a temp
    /// file in the target directory, fsyncs it and renames it over the target path.
    /// Returns the target path. On error the target is untouched and temp files are removed.
    pub fn finish(self, started_at: DateTime<Local>, ended_at: DateTime<Local>) -> Result<PathBuf> {
        let C1zWriter {
            conn,
            work,
            target,
            dir,
            sync_id,
            sync_type,
        } = self;
        if ended_at < started_at {
            bail!(
                "cannot finish .c1z {}: sync ended ({}) before it started ({})",
                target.display(),
                timefmt::format_db_time(&ended_at),
                timefmt::format_db_time(&started_at)
            );
        }
        conn.execute(
            "insert into v1_sync_runs
                (sync_id, started_at, ended_at, sync_token, sync_type, parent_sync_id,
                 linked_sync_id, supports_diff, grants_backfilled, stats)
             values (?1, ?2, ?3, '', ?4, '', '', 1, 1, null)",
            params![
                sync_id,
                timefmt::format_db_time(&started_at),
                timefmt::format_db_time(&ended_at),
                sync_type
            ],
        )
        .context("recording the sync run")?;
        // The session store is per-sync scratch space, cleared at the end of a sync.
        conn.execute(
            "delete from v1_connector_sessions where sync_id = ?1",
            params![sync_id],
        )?;
        conn.close()
            .map_err(|(_, e)| e)
            .context("closing the SQLite database")?;

        let db_path = work.path().join("db");
        let file_name = target.file_name().unwrap_or_default();
        let mut out = tempfile::Builder::new()
            .prefix(&temp_prefix(file_name))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temp file in {}", dir.display()))?;
        write_envelope(&db_path, out.as_file_mut())
            .with_context(|| format!("writing {}", out.path().display()))?;
        out.as_file()
            .sync_all()
            .with_context(|| format!("syncing {}", out.path().display()))?;
        out.persist(&target)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming the new .c1z over {}", target.display()))?;
        // Make the rename durable; failure here is not fatal (the file is complete).
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        drop(work);
        Ok(target)
    }
}

fn temp_prefix(file_name: &std::ffi::OsStr) -> OsString {
    let mut p = OsString::from(".");
    p.push(file_name);
    p.push(".");
    p
}

fn init_db(conn: &Connection) -> Result<()> {
    // Rollback journal (never WAL); the database is scratch until packaged, so no fsyncs.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "TRUNCATE", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("truncate") {
        bail!("SQLite refused journal_mode=TRUNCATE (got {mode})");
    }
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -32768)?;
    conn.set_prepared_statement_cache_capacity(16);
    let tx = conn.unchecked_transaction()?;
    for stmt in schema::DDL {
        tx.execute(stmt, [])
            .with_context(|| format!("running DDL: {stmt}"))?;
    }
    tx.commit()?;
    Ok(())
}

fn write_envelope(db_path: &Path, out: &mut File) -> Result<()> {
    let mut input =
        File::open(db_path).with_context(|| format!("opening {}", db_path.display()))?;
    let len = input.metadata()?.len();
    let mut w = BufWriter::with_capacity(1 << 20, out);
    w.write_all(C1Z_V1_MAGIC)?;
    let mut enc = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
    enc.include_checksum(true)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(len))?;
    let copied = io::copy(&mut input, &mut enc)?;
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

fn grant_row(g: &pb::Grant) -> Result<GrantRow<'_>> {
    if g.id.is_empty() {
        bail!("grant has an empty id");
    }
    let ent = g
        .entitlement
        .as_ref()
        .ok_or_else(|| anyhow!("grant has no entitlement"))?;
    if ent.id.is_empty() {
        bail!("grant's entitlement has an empty id");
    }
    let ent_res = ent
        .resource
        .as_ref()
        .ok_or_else(|| anyhow!("grant's entitlement {:?} has no resource", ent.id))
        .and_then(|r| resource_id_of(r).context("grant's entitlement resource"))?;
    let principal = g
        .principal
        .as_ref()
        .ok_or_else(|| anyhow!("grant has no principal"))
        .and_then(|p| resource_id_of(p).context("grant's principal"))?;

    let (expansion, needs_expansion, data) =
        if annotations::contains::<pb::GrantExpandable>(&g.annotations) {
            let mut stripped = g.clone();
            let ge = annotations::remove::<pb::GrantExpandable>(&mut stripped.annotations)
                .unwrap_or_default();
            let needs = ge.entitlement_ids.iter().any(|id| !id.trim().is_empty());
            (
                Some(ge.encode_to_vec()),
                i64::from(needs),
                stripped.encode_to_vec(),
            )
        } else {
            (None, 0, g.encode_to_vec())
        };

    Ok(GrantRow {
        resource_type_id: &ent_res.resource_type,
        resource_id: &ent_res.resource,
        entitlement_id: &ent.id,
        principal_type: &principal.resource_type,
        principal_id: &principal.resource,
        external_id: &g.id,
        expansion,
        needs_expansion,
        data,
    })
}
