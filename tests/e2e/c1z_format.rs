//! The `.c1z` the host writes is Baton's v1 format (reference/baton-sdk.md §4): magic, one zstd
//! stream of SQLite, the exact tables, columns and index names, a finished full sync run with
//! local-time timestamps.

mod common;

use common::*;
use fakes::segment::FakeConfig;

/// (column, declared type, not null)
type Column = (&'static str, &'static str, bool);

/// (table, columns)
const TABLES: &[(&str, &[Column])] = &[
    (
        "v1_resource_types",
        &[
            ("id", "integer", false),
            ("external_id", "text", true),
            ("data", "blob", true),
            ("sync_id", "text", true),
            ("discovered_at", "datetime", true),
        ],
    ),
    (
        "v1_resources",
        &[
            ("id", "integer", false),
            ("resource_type_id", "text", true),
            ("external_id", "text", true),
            ("parent_resource_type_id", "text", false),
            ("parent_resource_id", "text", false),
            ("data", "blob", true),
            ("sync_id", "text", true),
            ("discovered_at", "datetime", true),
        ],
    ),
    (
        "v1_entitlements",
        &[
            ("id", "integer", false),
            ("resource_type_id", "text", true),
            ("resource_id", "text", true),
            ("external_id", "text", true),
            ("data", "blob", true),
            ("sync_id", "text", true),
            ("discovered_at", "datetime", true),
        ],
    ),
    (
        "v1_grants",
        &[
            ("id", "integer", false),
            ("resource_type_id", "text", true),
            ("resource_id", "text", true),
            ("entitlement_id", "text", true),
            ("principal_resource_type_id", "text", true),
            ("principal_resource_id", "text", true),
            ("external_id", "text", true),
            ("expansion", "blob", false),
            ("needs_expansion", "integer", true),
            ("data", "blob", true),
            ("sync_id", "text", true),
            ("discovered_at", "datetime", true),
        ],
    ),
    (
        "v1_sync_runs",
        &[
            ("id", "integer", false),
            ("sync_id", "text", true),
            ("started_at", "datetime", true),
            ("ended_at", "datetime", false),
            ("sync_token", "text", true),
            ("sync_type", "text", true),
            ("parent_sync_id", "text", true),
            ("linked_sync_id", "text", true),
            ("supports_diff", "integer", true),
            ("grants_backfilled", "integer", true),
            ("stats", "text", false),
            ("ingest_invariant_generation", "text", true),
            ("ingest_invariant_coverage", "text", true),
            ("ingest_invariant_mode", "text", true),
        ],
    ),
    (
        "v1_assets",
        &[
            ("id", "integer", false),
            ("external_id", "text", true),
            ("content_type", "text", true),
            ("data", "blob", true),
            ("sync_id", "text", true),
            ("discovered_at", "datetime", true),
        ],
    ),
    (
        "v1_connector_sessions",
        &[
            ("id", "integer", false),
            ("sync_id", "text", true),
            ("key", "text", true),
            ("value", "blob", true),
        ],
    ),
];

/// (index, table, unique, columns, partial WHERE)
type Index = (
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    Option<&'static str>,
);

const INDEXES: &[Index] = &[
    (
        "idx_resource_types_external_sync_v1",
        "v1_resource_types",
        true,
        &["external_id", "sync_id"],
        None,
    ),
    (
        "idx_resources_resource_type_id_v1",
        "v1_resources",
        false,
        &["resource_type_id"],
        None,
    ),
    // These two names are swapped relative to their columns in Baton's DDL; kept as they are.
    (
        "idx_resources_external_sync_v1",
        "v1_resources",
        false,
        &["parent_resource_type_id", "parent_resource_id"],
        None,
    ),
    (
        "idx_resources_parent_resource_id_v1",
        "v1_resources",
        true,
        &["external_id", "sync_id"],
        None,
    ),
    (
        "idx_entitlements_resource_id_v1",
        "v1_entitlements",
        false,
        &["resource_type_id", "resource_id"],
        None,
    ),
    (
        "idx_entitlements_external_sync_v1",
        "v1_entitlements",
        true,
        &["external_id", "sync_id"],
        None,
    ),
    (
        "idx_grants_resource_type_id_resource_id_v1",
        "v1_grants",
        false,
        &["resource_type_id", "resource_id"],
        None,
    ),
    (
        "idx_grants_principal_id_v1",
        "v1_grants",
        false,
        &["principal_resource_type_id", "principal_resource_id"],
        None,
    ),
    (
        "idx_grants_entitlement_id_principal_id_v1",
        "v1_grants",
        false,
        &[
            "entitlement_id",
            "principal_resource_type_id",
            "principal_resource_id",
        ],
        None,
    ),
    (
        "idx_grants_external_sync_v1",
        "v1_grants",
        true,
        &["external_id", "sync_id"],
        None,
    ),
    (
        "idx_grants_entitlement_sync_grant_v1",
        "v1_grants",
        false,
        &["entitlement_id", "sync_id", "id"],
        None,
    ),
    (
        "idx_grants_sync_expansion_v1",
        "v1_grants",
        false,
        &["sync_id"],
        Some("expansion IS NOT NULL"),
    ),
    (
        "idx_grants_sync_needs_expansion_v1",
        "v1_grants",
        false,
        &["sync_id"],
        Some("needs_expansion = 1"),
    ),
    (
        "idx_sync_runs_sync_id_v1",
        "v1_sync_runs",
        true,
        &["sync_id"],
        None,
    ),
    (
        "idx_assets_external_sync_v1",
        "v1_assets",
        true,
        &["external_id", "sync_id"],
        None,
    ),
    (
        "idx_session_store_sync_key_v1",
        "v1_connector_sessions",
        true,
        &["sync_id", "key"],
        None,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_file_has_batons_exact_schema_and_a_finished_full_sync() {
    let fake = fake(FakeConfig::demo()).await;
    let dir = temp_dir();
    let summary = sync(&fake, &out(&dir)).await.unwrap();
    let bytes = std::fs::read(out(&dir)).unwrap();
    assert_eq!(&bytes[..5], b"C1ZF\0");
    // Exactly one zstd frame follows the magic.
    let frame = zstd::zstd_safe::find_frame_compressed_size(&bytes[5..]).expect("a zstd frame");
    assert_eq!(frame, bytes.len() - 5, "one frame, nothing after it");

    let c1z = Synced::open(&out(&dir));
    let schema = c1z.reader.schema().unwrap();
    let mut tables: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    tables.sort();
    let mut expected: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    expected.sort();
    assert_eq!(tables, expected);
    for (table, columns) in TABLES {
        let got = schema.table(table).unwrap();
        let got: Vec<(&str, &str, bool)> = got
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.decl_type.as_str(), c.not_null))
            .collect();
        let got: Vec<(String, String, bool)> = got
            .iter()
            .map(|(n, t, nn)| (n.to_string(), t.to_ascii_lowercase(), *nn))
            .collect();
        let want: Vec<(String, String, bool)> = columns
            .iter()
            .map(|(n, t, nn)| (n.to_string(), t.to_string(), *nn))
            .collect();
        assert_eq!(got, want, "columns of {table}");
    }
    let mut index_names: Vec<&str> = schema.indexes.iter().map(|i| i.name.as_str()).collect();
    index_names.sort();
    let mut want_names: Vec<&str> = INDEXES.iter().map(|i| i.0).collect();
    want_names.sort();
    assert_eq!(index_names, want_names);
    for (name, table, unique, columns, partial) in INDEXES {
        let got = schema.index(name).unwrap();
        assert_eq!(got.table, *table, "{name}");
        assert_eq!(got.unique, *unique, "{name}");
        assert_eq!(got.columns, *columns, "{name}");
        assert_eq!(
            got.partial
                .as_deref()
                .map(|p| p.replace(' ', "").to_ascii_lowercase()),
            partial.map(|p| p.replace(' ', "").to_ascii_lowercase()),
            "{name}"
        );
    }

    let run = c1z.reader.latest_sync().unwrap();
    assert_eq!(run.sync_id, summary.sync_id);
    assert_eq!(run.sync_id.len(), 27);
    assert_eq!(run.sync_type, "full");
    assert!(run.supports_diff);
    let ended = run.ended_at.expect("finished");
    for t in [&run.started_at, &ended] {
        // Local wall-clock time, `YYYY-MM-DD HH:MM:SS[.fraction]`, no `T`, no zone.
        assert!(
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").is_ok(),
            "{t}"
        );
        assert!(
            !t.contains('T') && !t.contains('Z') && !t.contains('+'),
            "{t}"
        );
    }
    let conn = rusqlite::Connection::open(c1z.reader.db_path()).unwrap();
    let (token, backfilled): (String, i64) = conn
        .query_row(
            "select sync_token, grants_backfilled from v1_sync_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((token.as_str(), backfilled), ("", 1));
    let mode: String = conn
        .query_row("pragma journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_ne!(mode.to_ascii_lowercase(), "wal");
}
