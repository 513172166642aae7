//! The SQLite schema of a v1 `.c1z` (baton-sdk §4.2): seven `v1_` tables and their indexes,
//! with the exact names the Go SDK uses (including the two index names on `v1_resources`
//! that are swapped relative to their columns), so the Go side's `if not exists` DDL is a
//! no-op on our files.

/// Table names.
pub const RESOURCE_TYPES: &str = "v1_resource_types";
pub const RESOURCES: &str = "v1_resources";
pub const ENTITLEMENTS: &str = "v1_entitlements";
pub const GRANTS: &str = "v1_grants";
pub const SYNC_RUNS: &str = "v1_sync_runs";
pub const ASSETS: &str = "v1_assets";
pub const CONNECTOR_SESSIONS: &str = "v1_connector_sessions";

/// All seven tables, in creation order.
pub const ALL_TABLES: [&str; 7] = [
    RESOURCE_TYPES,
    RESOURCES,
    ENTITLEMENTS,
    GRANTS,
    SYNC_RUNS,
    ASSETS,
    CONNECTOR_SESSIONS,
];

/// Tables a reader requires.
pub const REQUIRED_TABLES: [&str; 5] = [RESOURCE_TYPES, RESOURCES, ENTITLEMENTS, GRANTS, SYNC_RUNS];

/// The `create table` of a table of synced objects: `id`, the columns given, then the object
/// itself (`data`), the sync that found it and when.
macro_rules! synced_table {
    ($name:literal, $($column:literal),+) => {
        concat!(
            "create table if not exists ", $name, " (\n        id integer primary key,\n",
            $("        ", $column, ",\n",)+
            "        data blob not null,\n        sync_id text not null,\n",
            "        discovered_at datetime not null\n    )"
        )
    };
}

/// The `create index` of one index: `unique` or not, its name, its table and columns (and a
/// `where` for a partial index).
macro_rules! index {
    (unique $name:literal on $table_columns:literal) => {
        concat!(
            "create unique index if not exists ",
            $name,
            "\n        on ",
            $table_columns
        )
    };
    ($name:literal on $table_columns:literal) => {
        concat!(
            "create index if not exists ",
            $name,
            "\n        on ",
            $table_columns
        )
    };
}

/// Indexes of the grants table that no query of a sync in progress uses: a writer builds them
/// once, when the sync ends (a bulk build sorts once; kept up to date, they cost every grant
/// three more B-tree insertions). Their columns all come before the blob, so building one
/// reads no overflow pages.
pub const DEFERRED_INDEXES: [&str; 3] = [
    "idx_grants_resource_type_id_resource_id_v1",
    "idx_grants_principal_id_v1",
    "idx_grants_entitlement_id_principal_id_v1",
];

/// Indexes no query of a sync in progress uses either, left out of a new database only while
/// it is in memory: a many-tenant host holds one such database per tenant syncing, each a page
/// larger per index. They are built when the database moves to disk (small then, so the build
/// is quick; a large workspace's grants table read again at the end cost more than keeping
/// them up to date), before grant expansion (which uses the last two) and at the end.
pub const DEFERRED_IN_MEMORY: [&str; 5] = [
    "idx_resources_external_sync_v1",
    "idx_entitlements_resource_id_v1",
    "idx_grants_entitlement_sync_grant_v1",
    "idx_grants_sync_expansion_v1",
    "idx_grants_sync_needs_expansion_v1",
];

/// Whether `stmt` (of [`DDL`]) creates one of the [`DEFERRED_INDEXES`].
pub fn is_deferred(stmt: &str) -> bool {
    DEFERRED_INDEXES.iter().any(|i| stmt.contains(i))
}

/// Whether `stmt` (of [`DDL`]) creates one of the [`DEFERRED_IN_MEMORY`] indexes.
pub fn is_deferred_in_memory(stmt: &str) -> bool {
    DEFERRED_IN_MEMORY.iter().any(|i| stmt.contains(i))
}

/// Whether `stmt` (of [`DDL`]) creates an index a new database starts without (either list).
pub fn is_built_later(stmt: &str) -> bool {
    is_deferred(stmt) || is_deferred_in_memory(stmt)
}

/// The DDL run on a new database (one statement per entry).
pub const DDL: &[&str] = &[
    // v1_resource_types
    synced_table!("v1_resource_types", "external_id text not null"),
    index!(unique "idx_resource_types_external_sync_v1"
        on "v1_resource_types (external_id, sync_id)"),
    // v1_resources
    synced_table!(
        "v1_resources",
        "resource_type_id text not null",
        "external_id text not null",
        "parent_resource_type_id text",
        "parent_resource_id text"
    ),
    index!("idx_resources_resource_type_id_v1" on "v1_resources (resource_type_id)"),
    // The next two names are swapped relative to their columns, exactly as in the Go DDL.
    index!("idx_resources_external_sync_v1"
        on "v1_resources (parent_resource_type_id, parent_resource_id)"),
    index!(unique "idx_resources_parent_resource_id_v1" on "v1_resources (external_id, sync_id)"),
    // v1_entitlements
    synced_table!(
        "v1_entitlements",
        "resource_type_id text not null",
        "resource_id text not null",
        "external_id text not null"
    ),
    index!("idx_entitlements_resource_id_v1" on "v1_entitlements (resource_type_id, resource_id)"),
    index!(unique "idx_entitlements_external_sync_v1" on "v1_entitlements (external_id, sync_id)"),
    // v1_grants
    synced_table!(
        "v1_grants",
        "resource_type_id text not null",
        "resource_id text not null",
        "entitlement_id text not null",
        "principal_resource_type_id text not null",
        "principal_resource_id text not null",
        "external_id text not null",
        "expansion blob",
        "needs_expansion integer not null default 0"
    ),
    index!("idx_grants_resource_type_id_resource_id_v1"
        on "v1_grants (resource_type_id, resource_id)"),
    index!("idx_grants_principal_id_v1"
        on "v1_grants (principal_resource_type_id, principal_resource_id)"),
    index!("idx_grants_entitlement_id_principal_id_v1"
        on "v1_grants (entitlement_id, principal_resource_type_id, principal_resource_id)"),
    index!(unique "idx_grants_external_sync_v1" on "v1_grants (external_id, sync_id)"),
    index!("idx_grants_entitlement_sync_grant_v1" on "v1_grants (entitlement_id, sync_id, id)"),
    index!("idx_grants_sync_expansion_v1" on "v1_grants (sync_id) where expansion is not null"),
    index!("idx_grants_sync_needs_expansion_v1" on "v1_grants (sync_id) where needs_expansion = 1"),
    // v1_sync_runs
    "create table if not exists v1_sync_runs (
        id integer primary key,
        sync_id text not null,
        started_at datetime not null,
        ended_at datetime,
        sync_token text not null,
        sync_type text not null default 'full',
        parent_sync_id text not null default '',
        linked_sync_id text not null default '',
        supports_diff integer not null default 0,
        grants_backfilled integer not null default 0,
        stats text,
        ingest_invariant_generation text not null default '',
        ingest_invariant_coverage text not null default '',
        ingest_invariant_mode text not null default ''
    )",
    index!(unique "idx_sync_runs_sync_id_v1" on "v1_sync_runs (sync_id)"),
    // v1_assets
    synced_table!(
        "v1_assets",
        "external_id text not null",
        "content_type text not null"
    ),
    index!(unique "idx_assets_external_sync_v1" on "v1_assets (external_id, sync_id)"),
    // v1_connector_sessions
    "create table if not exists v1_connector_sessions (
        id integer primary key,
        sync_id text not null,
        key text not null,
        value blob not null
    )",
    index!(unique "idx_session_store_sync_key_v1" on "v1_connector_sessions (sync_id, key)"),
];
