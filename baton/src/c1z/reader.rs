//! Reads a v1 `.c1z`: checks the `C1ZF\0` magic, decompresses the zstd stream (window at
//! most 128 MiB, output at most 10 GiB) into a private temp directory and opens the SQLite
//! database read-only. Every row query filters on `sync_id` and returns rows by `id`
//! ascending.

use super::{C1Z_V1_MAGIC, C1Z_V3_MAGIC, schema};
use crate::{Result, annotations, pb};
use anyhow::{Context, anyhow, bail};
use prost::Message;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Largest decoded database accepted (10 GiB), as in the Go reader.
pub const MAX_DECODED_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// Largest zstd window accepted: 2^27 bytes = 128 MiB, as in the Go reader.
pub const MAX_WINDOW_LOG: u32 = 27;

const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// One row of `v1_sync_runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub sync_id: String,
    /// Text as stored (`YYYY-MM-DD HH:MM:SS[.fraction]`, local time).
    pub started_at: String,
    /// `None` while the sync is unfinished.
    pub ended_at: Option<String>,
    pub sync_type: String,
    pub supports_diff: bool,
}

/// A grant row: the blob (without `GrantExpandable`) and the expansion columns.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGrant {
    pub grant: pb::Grant,
    pub expansion: Option<pb::GrantExpandable>,
    pub needs_expansion: bool,
}

/// Row counts of one sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub resource_types: u64,
    /// Total over all types.
    pub resources: u64,
    /// Keyed by resource type id.
    pub resources_by_type: BTreeMap<String, u64>,
    pub entitlements: u64,
    pub grants: u64,
    /// Grants with `needs_expansion = 1`.
    pub grants_needing_expansion: u64,
}

/// A column as declared (from `pragma table_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    /// Declared type as written in the DDL (e.g. `integer`, `text`, `datetime`).
    pub decl_type: String,
    pub not_null: bool,
    /// Default value expression as written (e.g. `0`, `'full'`, `''`).
    pub default: Option<String>,
    pub primary_key: bool,
}

/// A table and its columns, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSchema>,
}

/// An index (from `sqlite_master` and `pragma index_list/index_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: String,
    pub table: String,
    pub unique: bool,
    pub columns: Vec<String>,
    /// The `WHERE` expression of a partial index, as written.
    pub partial: Option<String>,
}

/// Tables and indexes of the database, both sorted by name (SQLite's internal objects
/// and automatic indexes are excluded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub tables: Vec<TableSchema>,
    pub indexes: Vec<IndexSchema>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.iter().find(|t| t.name == name)
    }
    pub fn index(&self, name: &str) -> Option<&IndexSchema> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

/// An opened v1 `.c1z`. The decompressed database lives in a temp directory that is
/// removed on drop.
pub struct C1zReader {
    // Field order matters: the connection closes before the temp directory is removed.
    conn: Connection,
    _tmp: TempDir,
    db_path: PathBuf,
    source: PathBuf,
    has_expansion_columns: bool,
}

impl std::fmt::Debug for C1zReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C1zReader")
            .field("source", &self.source)
            .field("db_path", &self.db_path)
            .finish()
    }
}

impl C1zReader {
    /// Opens and decompresses `path`. Errors name the file and say what is wrong: missing
    /// file, bad magic (a v3/Pebble file is recognised), truncated or corrupt zstd, payload
    /// that is not SQLite, missing tables.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        let tmp = tempfile::Builder::new()
            .prefix("c1z")
            .tempdir()
            .context("creating a temp directory for the decompressed database")?;
        let db_path = tmp.path().join("db");
        unpack(path, &db_path)?;

        let conn = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("{shown}: cannot open the SQLite database"))?;
        let tables = table_names(&conn)
            .with_context(|| format!("{shown}: the payload is not a valid SQLite database"))?;
        let missing: Vec<&str> = schema::REQUIRED_TABLES
            .iter()
            .copied()
            .filter(|t| !tables.iter().any(|n| n == t))
            .collect();
        if !missing.is_empty() {
            bail!(
                "{shown}: the database is missing table(s) {} (not a v1 c1z?)",
                missing.join(", ")
            );
        }
        let grant_cols = column_names(&conn, schema::GRANTS)?;
        let has_expansion_columns = grant_cols.iter().any(|c| c == "expansion")
            && grant_cols.iter().any(|c| c == "needs_expansion");

        Ok(Self {
            conn,
            _tmp: tmp,
            db_path,
            source: path.to_path_buf(),
            has_expansion_columns,
        })
    }

    /// Path of the decompressed SQLite database (inside the reader's temp directory).
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The underlying read-only connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// All sync runs, by `id` ascending.
    pub fn syncs(&self) -> Result<Vec<SyncRun>> {
        let mut stmt = self.conn.prepare(
            "select sync_id, started_at, ended_at, sync_type, supports_diff
             from v1_sync_runs order by id asc",
        )?;
        let rows = stmt.query_map([], sync_run_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The latest finished `full` sync (ended_at DESC, sync_id DESC); if there is none, the
    /// latest finished sync of another type (a `partial` or `resources_only` one); else the
    /// latest unfinished sync of any type (started_at DESC, sync_id DESC).
    pub fn latest_sync(&self) -> Result<SyncRun> {
        // Each choice in turn, as `where … order by …`.
        const CHOICES: [&str; 3] = [
            "ended_at is not null and sync_type = 'full' order by ended_at desc",
            "ended_at is not null order by ended_at desc",
            "ended_at is null order by started_at desc",
        ];
        for choice in CHOICES {
            let sql = format!(
                "select sync_id, started_at, ended_at, sync_type, supports_diff
                 from v1_sync_runs where {choice}, sync_id desc limit 1"
            );
            if let Some(s) = self
                .conn
                .query_row(&sql, [], sync_run_from_row)
                .optional()?
            {
                return Ok(s);
            }
        }
        Err(anyhow!("{} contains no sync runs", self.source.display()))
    }

    pub fn resource_types(&self, sync_id: &str) -> Result<Vec<pb::ResourceType>> {
        self.decode_blobs(schema::RESOURCE_TYPES, sync_id)
    }

    pub fn resources(&self, sync_id: &str) -> Result<Vec<pb::Resource>> {
        self.decode_blobs(schema::RESOURCES, sync_id)
    }

    pub fn entitlements(&self, sync_id: &str) -> Result<Vec<pb::Entitlement>> {
        self.decode_blobs(schema::ENTITLEMENTS, sync_id)
    }

    /// Grants with their expansion columns. A `GrantExpandable` still inside a blob (files
    /// written before the expansion column existed) is moved out as the Go backfill does.
    pub fn grants(&self, sync_id: &str) -> Result<Vec<StoredGrant>> {
        let sql = if self.has_expansion_columns {
            "select id, data, expansion, needs_expansion from v1_grants
             where sync_id = ?1 order by id asc"
        } else {
            "select id, data, null, 0 from v1_grants where sync_id = ?1 order by id asc"
        };
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query(params![sync_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let data: Vec<u8> = row.get(1)?;
            let expansion: Option<Vec<u8>> = row.get(2)?;
            let needs: i64 = row.get::<_, Option<i64>>(3)?.unwrap_or(0);
            let mut grant = pb::Grant::decode(data.as_slice())
                .with_context(|| format!("decoding v1_grants row id {id}"))?;
            let in_blob = annotations::remove::<pb::GrantExpandable>(&mut grant.annotations);
            let (expansion, needs_expansion) = match expansion {
                Some(bytes) => (
                    Some(
                        pb::GrantExpandable::decode(bytes.as_slice()).with_context(|| {
                            format!("decoding the expansion of v1_grants row id {id}")
                        })?,
                    ),
                    needs != 0,
                ),
                None => match in_blob {
                    Some(ge) => {
                        let needs = ge.entitlement_ids.iter().any(|e| !e.trim().is_empty());
                        (Some(ge), needs)
                    }
                    None => (None, needs != 0),
                },
            };
            out.push(StoredGrant {
                grant,
                expansion,
                needs_expansion,
            });
        }
        Ok(out)
    }

    /// Row counts of one sync.
    pub fn stats(&self, sync_id: &str) -> Result<Stats> {
        let count = |table: &str, extra: &str| -> Result<u64> {
            let n: i64 = self.conn.query_row(
                &format!("select count(*) from {table} where sync_id = ?1{extra}"),
                params![sync_id],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let mut stats = Stats {
            resource_types: count(schema::RESOURCE_TYPES, "")?,
            resources: count(schema::RESOURCES, "")?,
            entitlements: count(schema::ENTITLEMENTS, "")?,
            grants: count(schema::GRANTS, "")?,
            grants_needing_expansion: if self.has_expansion_columns {
                count(schema::GRANTS, " and needs_expansion = 1")?
            } else {
                0
            },
            ..Default::default()
        };
        let mut stmt = self.conn.prepare(
            "select resource_type_id, count(*) from v1_resources
             where sync_id = ?1 group by resource_type_id order by resource_type_id",
        )?;
        let rows = stmt.query_map(params![sync_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (rt, n) = row?;
            stats
                .resources_by_type
                .insert(rt, u64::try_from(n).unwrap_or(0));
        }
        Ok(stats)
    }

    /// Tables, columns and indexes as SQLite reports them.
    pub fn schema(&self) -> Result<Schema> {
        let mut schema = Schema::default();
        for table in table_names(&self.conn)? {
            let mut stmt = self
                .conn
                .prepare("select name, type, \"notnull\", dflt_value, pk from pragma_table_info(?1) order by cid")?;
            let columns = stmt
                .query_map(params![table], |r| {
                    Ok(ColumnSchema {
                        name: r.get(0)?,
                        decl_type: r.get(1)?,
                        not_null: r.get::<_, i64>(2)? != 0,
                        default: r.get(3)?,
                        primary_key: r.get::<_, i64>(4)? != 0,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            schema.tables.push(TableSchema {
                name: table,
                columns,
            });
        }

        let mut stmt = self.conn.prepare(
            "select name, tbl_name, sql from sqlite_master
             where type = 'index' and name not like 'sqlite_%' order by name",
        )?;
        let idx: Vec<(String, String, Option<String>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (name, table, sql) in idx {
            let unique: bool = self.conn.query_row(
                "select \"unique\" from pragma_index_list(?1) where name = ?2",
                params![table, name],
                |r| r.get::<_, i64>(0).map(|u| u != 0),
            )?;
            let mut cstmt = self
                .conn
                .prepare("select name from pragma_index_info(?1) order by seqno")?;
            let columns = cstmt
                .query_map(params![name], |r| r.get::<_, Option<String>>(0))?
                .map(|c| c.map(|c| c.unwrap_or_else(|| "<expr>".into())))
                .collect::<Result<Vec<_>, _>>()?;
            let partial = sql.as_deref().and_then(partial_where);
            schema.indexes.push(IndexSchema {
                name,
                table,
                unique,
                columns,
                partial,
            });
        }
        Ok(schema)
    }

    fn decode_blobs<M: Message + Default>(&self, table: &str, sync_id: &str) -> Result<Vec<M>> {
        let mut stmt = self.conn.prepare(&format!(
            "select id, data from {table} where sync_id = ?1 order by id asc"
        ))?;
        let mut rows = stmt.query(params![sync_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let data: Vec<u8> = row.get(1)?;
            out.push(
                M::decode(data.as_slice())
                    .with_context(|| format!("decoding {table} row id {id}"))?,
            );
        }
        Ok(out)
    }
}

/// Decompresses the `.c1z` at `path` into the SQLite database file `db_path`. Errors name
/// the file and say what is wrong: missing file, bad magic (a v3/Pebble file is recognised),
/// truncated or corrupt zstd, a payload that is not SQLite.
pub(crate) fn unpack(path: &Path, db_path: &Path) -> Result<()> {
    let (mut input, _) = open_payload(path)?;
    let out = File::create(db_path).with_context(|| format!("creating {}", db_path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let decoded = decompress(&mut input, &mut out, MAX_DECODED_SIZE)
        .and_then(|n| Ok(out.flush().map(|()| n)?))
        .with_context(|| format!("{}: corrupt or truncated zstd stream", path.display()))?;
    let mut head = Vec::with_capacity(16);
    File::open(db_path)?.take(16).read_to_end(&mut head)?;
    check_sqlite_header(&head, decoded)
        .with_context(|| format!("{}: the payload is not a SQLite database", path.display()))
}

/// The database of the `.c1z` at `path`, decompressed into memory, when its zstd frame
/// declares at most `limit` bytes; `None` when it declares more (or no size).
pub(crate) fn unpack_small(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let (mut input, declared) = open_payload(path)?;
    let Some(size) = declared.filter(|&n| n <= limit) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(size as usize);
    let decoded = decompress(&mut input, &mut out, size)
        .with_context(|| format!("{}: corrupt or truncated zstd stream", path.display()))?;
    check_sqlite_header(&out[..out.len().min(16)], decoded)
        .with_context(|| format!("{}: the payload is not a SQLite database", path.display()))?;
    Ok(Some(out))
}

/// Opens the `.c1z` at `path` and checks its header: the reader positioned at the zstd
/// stream, and the decoded size its frame declares.
fn open_payload(path: &Path) -> Result<(BufReader<File>, Option<u64>)> {
    let shown = path.display();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("c1z file {shown} does not exist")
        }
        Err(e) => bail!("cannot open c1z file {shown}: {e}"),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot stat c1z file {shown}"))?;
    if meta.is_dir() {
        bail!("c1z path {shown} is a directory, not a file");
    }
    let mut input = BufReader::with_capacity(1 << 20, file);

    let mut magic = Vec::with_capacity(5);
    (&mut input)
        .take(5)
        .read_to_end(&mut magic)
        .with_context(|| format!("cannot read c1z file {shown}"))?;
    check_magic(&magic).with_context(|| format!("{shown} is not a readable v1 .c1z file"))?;

    // Fail fast on a declared content size above the cap.
    let head = input
        .fill_buf()
        .with_context(|| format!("cannot read c1z file {shown}"))?;
    if head.is_empty() {
        bail!("{shown} is truncated: the zstd stream after the C1ZF header is missing");
    }
    let declared = zstd::zstd_safe::get_frame_content_size(head).ok().flatten();
    if let Some(size) = declared
        && size > MAX_DECODED_SIZE
    {
        bail!(
            "{shown}: the zstd frame declares {size} decoded bytes, more than the {MAX_DECODED_SIZE}-byte limit"
        );
    }
    Ok((input, declared))
}

fn check_magic(magic: &[u8]) -> Result<()> {
    if magic == C1Z_V1_MAGIC {
        return Ok(());
    }
    if magic.is_empty() {
        bail!("the file is empty (0 bytes)");
    }
    if magic.starts_with(&C1Z_V3_MAGIC[..4]) {
        bail!(
            "it is a v3 (Pebble) c1z (magic \"C1Z3\"), which is not supported; \
             have the connector write the v1 format with --storage-engine sqlite \
             (BATON_STORAGE_ENGINE=sqlite)"
        );
    }
    let shown = magic.escape_ascii().to_string();
    let hint = if magic.starts_with(&ZSTD_MAGIC) {
        " (a bare zstd stream without the C1ZF header)"
    } else if magic.starts_with(b"SQLit") {
        " (an uncompressed SQLite database)"
    } else if magic.len() < 5 {
        " (file too short)"
    } else {
        ""
    };
    bail!("expected the magic bytes \"C1ZF\\0\", found \"{shown}\"{hint}")
}

/// Decompresses all zstd frames from `input` into `out`, at most `limit` bytes; returns the
/// decoded size.
fn decompress(input: &mut BufReader<File>, out: &mut impl Write, limit: u64) -> Result<u64> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
    decoder.window_log_max(MAX_WINDOW_LOG)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        total += n as u64;
        if total > limit {
            bail!("the decoded database exceeds the {limit}-byte limit");
        }
        out.write_all(&buf[..n])
            .context("writing the decoded database")?;
    }
    Ok(total)
}

fn check_sqlite_header(head: &[u8], decoded: u64) -> Result<()> {
    if decoded == 0 {
        bail!("the decompressed payload is empty");
    }
    if head != SQLITE_HEADER {
        bail!(
            "the decompressed payload ({decoded} bytes) starts with \"{}\" instead of \"SQLite format 3\"",
            head.escape_ascii()
        );
    }
    Ok(())
}

pub(crate) fn table_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'
         order by name",
    )?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

pub(crate) fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("select name from pragma_table_info(?1)")?;
    let names = stmt
        .query_map(params![table], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

fn sync_run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SyncRun> {
    Ok(SyncRun {
        sync_id: r.get(0)?,
        started_at: value_text(r.get(1)?).unwrap_or_default(),
        ended_at: value_text(r.get(2)?),
        sync_type: value_text(r.get(3)?).unwrap_or_default(),
        supports_diff: matches!(r.get::<_, Value>(4)?, Value::Integer(n) if n != 0),
    })
}

/// A datetime column as text, whatever storage class it was written with.
fn value_text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        Value::Text(s) => Some(s),
        Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// The expression after the last top-level ` where ` of a `create index` statement.
fn partial_where(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let close = lower.rfind(')')?;
    let pos = lower[close..].find("where")? + close;
    let expr = sql[pos + "where".len()..].trim();
    (!expr.is_empty()).then(|| expr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_where_extraction() {
        assert_eq!(
            partial_where("create index x on t (a) where expansion is not null").as_deref(),
            Some("expansion is not null")
        );
        assert_eq!(
            partial_where("CREATE INDEX x ON t (a)\n  WHERE needs_expansion = 1").as_deref(),
            Some("needs_expansion = 1")
        );
        assert_eq!(partial_where("create index x on t (a, b)"), None);
    }

    #[test]
    fn magic_errors() {
        assert!(check_magic(b"C1ZF\0").is_ok());
        let e = check_magic(b"").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = check_magic(b"C1Z3\0").unwrap_err().to_string();
        assert!(
            e.contains("v3") && e.contains("--storage-engine sqlite"),
            "{e}"
        );
        let e = check_magic(b"PK\x03\x04\x14").unwrap_err().to_string();
        assert!(e.contains("PK\\x03\\x04\\x14"), "{e}");
        let e = check_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bare zstd"), "{e}");
    }
}
