//! Integration tests on real files: real SQLite, real zstd.
#![allow(clippy::type_complexity)]

mod common;

use baton::annotations;
use baton::c1z::{ksuid, timefmt};
use baton::{C1zReader, C1zWriter, pb};
use chrono::{Duration, Local};
use common::*;
use prost::Message;
use rusqlite::{Connection, params};
use std::fs;
use std::path::{Path, PathBuf};

fn times() -> (chrono::DateTime<Local>, chrono::DateTime<Local>) {
    let end = Local::now();
    (end - Duration::milliseconds(1500), end)
}

fn write_sample(path: &Path) -> (String, chrono::DateTime<Local>, chrono::DateTime<Local>) {
    let mut w = C1zWriter::create(path).unwrap();
    let sync_id = w.sync_id().to_string();
    w.put_resource_types(&resource_types()).unwrap();
    w.put_resources(&resources()).unwrap();
    w.put_entitlements(&entitlements()).unwrap();
    w.put_grants(&grants()).unwrap();
    let (start, end) = times();
    let out = w.finish(start, end).unwrap();
    assert_eq!(out, path);
    (sync_id, start, end)
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Decompresses a .c1z independently of the reader and opens the database with rusqlite.
fn open_raw(path: &Path, scratch: &Path) -> Connection {
    let bytes = fs::read(path).unwrap();
    assert_eq!(&bytes[..5], b"C1ZF\0");
    let db = zstd::stream::decode_all(&bytes[5..]).unwrap();
    let db_path = scratch.join("raw.db");
    fs::write(&db_path, db).unwrap();
    Connection::open(db_path).unwrap()
}

/// Builds a .c1z by hand from a raw SQLite database (for reader-only tests).
fn package_db(db_path: &Path, out: &Path) {
    let db = fs::read(db_path).unwrap();
    let mut bytes = b"C1ZF\0".to_vec();
    bytes.extend(zstd::stream::encode_all(db.as_slice(), 3).unwrap());
    fs::write(out, bytes).unwrap();
}

#[test]
fn round_trip_every_record_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let (sync_id, start, end) = write_sample(&path);
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);

    let r = C1zReader::open(&path).unwrap();
    assert_eq!(r.resource_types(&sync_id).unwrap(), resource_types());
    assert_eq!(r.resources(&sync_id).unwrap(), resources());
    assert_eq!(r.entitlements(&sync_id).unwrap(), entitlements());

    // Traits and profile survive.
    let res = r.resources(&sync_id).unwrap();
    let u1 = &res[1];
    let ut: pb::UserTrait = annotations::unpack(&u1.annotations).unwrap();
    assert_eq!(ut.emails[0].address, "ada@example.com");
    assert_eq!(ut.account_type, pb::user_trait::AccountType::Human as i32);
    assert_eq!(ut.structured_name.unwrap().family_name, "Lovelace");
    assert_eq!(
        u1.profile.as_ref().unwrap().fields["email"],
        s("ada@example.com")
    );
    let ws = &res[0];
    assert_eq!(
        annotations::unpack::<pb::AppTrait>(&ws.annotations)
            .unwrap()
            .flags,
        vec![pb::app_trait::AppFlag::Saml as i32]
    );

    let stored = r.grants(&sync_id).unwrap();
    let mut expected = grants();
    let ge = annotations::remove::<pb::GrantExpandable>(&mut expected[2].annotations).unwrap();
    assert_eq!(stored.len(), 3);
    for (s, e) in stored.iter().zip(&expected) {
        assert_eq!(&s.grant, e);
    }
    assert_eq!(stored[0].expansion, None);
    assert!(!stored[0].needs_expansion);
    assert_eq!(stored[2].expansion.as_ref(), Some(&ge));
    assert!(stored[2].needs_expansion);
    assert!(annotations::contains::<pb::GrantImmutable>(
        &stored[2].grant.annotations
    ));

    // Sync run.
    let syncs = r.syncs().unwrap();
    assert_eq!(syncs.len(), 1);
    let run = r.latest_sync().unwrap();
    assert_eq!(run, syncs[0]);
    assert_eq!(run.sync_id, sync_id);
    assert_eq!(run.sync_type, "full");
    assert!(run.supports_diff);
    assert_eq!(run.started_at, timefmt::format_db_time(&start));
    assert_eq!(
        run.ended_at.as_deref(),
        Some(timefmt::format_db_time(&end).as_str())
    );

    // Stats.
    let st = r.stats(&sync_id).unwrap();
    assert_eq!(st.resource_types, 4);
    assert_eq!(st.resources, 6);
    assert_eq!(st.entitlements, 3);
    assert_eq!(st.grants, 3);
    assert_eq!(st.grants_needing_expansion, 1);
    let by_type: Vec<(&str, u64)> = st
        .resources_by_type
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        by_type,
        vec![("group", 2), ("role", 1), ("user", 2), ("workspace", 1)]
    );

    // Other sync ids see nothing.
    assert!(r.resources("someothersync").unwrap().is_empty());
    assert!(r.grants("someothersync").unwrap().is_empty());
    assert_eq!(r.stats("someothersync").unwrap().grants, 0);

    // The temp dir of the reader goes away on drop.
    let db_path = r.db_path().to_path_buf();
    assert!(db_path.exists());
    drop(r);
    assert!(!db_path.exists());
}

#[test]
fn rows_and_columns_as_go_expects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let (sync_id, start, end) = write_sample(&path);
    let scratch = tempfile::tempdir().unwrap();
    let conn = open_raw(&path, scratch.path());

    // Sync run row.
    let row: (
        String,
        String,
        Option<String>,
        String,
        String,
        String,
        String,
        i64,
        i64,
        Option<String>,
    ) = conn
        .query_row(
            "select sync_id, started_at, ended_at, sync_token, sync_type, parent_sync_id,
                    linked_sync_id, supports_diff, grants_backfilled, stats from v1_sync_runs",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0, sync_id);
    assert_eq!(row.1, timefmt::format_db_time(&start));
    assert_eq!(row.2, Some(timefmt::format_db_time(&end)));
    assert_eq!((row.3.as_str(), row.4.as_str()), ("", "full"));
    assert_eq!((row.5.as_str(), row.6.as_str()), ("", ""));
    assert_eq!((row.7, row.8), (1, 1));
    assert_eq!(row.9, None);
    let typ: String = conn
        .query_row("select typeof(started_at) from v1_sync_runs", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(typ, "text");

    // Resource rows: external_id and parent columns.
    let mut stmt = conn
        .prepare(
            "select resource_type_id, external_id, parent_resource_type_id, parent_resource_id,
                    sync_id, discovered_at from v1_resources order by id",
        )
        .unwrap();
    let rows: Vec<(
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        String,
    )> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].0, "workspace");
    assert_eq!(rows[0].1, "workspace:w1");
    assert_eq!((rows[0].2.as_deref(), rows[0].3.as_deref()), (None, None));
    assert_eq!(rows[1].1, "user:u1");
    assert_eq!(
        (rows[1].2.as_deref(), rows[1].3.as_deref()),
        (Some("workspace"), Some("w1"))
    );
    for r in &rows {
        assert_eq!(r.4, sync_id);
        assert_db_time_format(&r.5);
    }

    // Entitlement rows.
    let ent: (String, String, String) = conn
        .query_row(
            "select resource_type_id, resource_id, external_id from v1_entitlements order by id limit 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(ent, ("group".into(), "g1".into(), "group:g1:member".into()));

    // Grant rows: expansion stripped from the blob into the column.
    let mut stmt = conn
        .prepare(
            "select resource_type_id, resource_id, entitlement_id, principal_resource_type_id,
                    principal_resource_id, external_id, expansion, needs_expansion, data
             from v1_grants order by id",
        )
        .unwrap();
    type G = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<Vec<u8>>,
        i64,
        Vec<u8>,
    );
    let rows: Vec<G> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3);
    let g0 = &rows[0];
    assert_eq!(
        (
            &g0.0[..],
            &g0.1[..],
            &g0.2[..],
            &g0.3[..],
            &g0.4[..],
            &g0.5[..]
        ),
        (
            "group",
            "g1",
            "group:g1:member",
            "user",
            "u1",
            "group:g1:member:user:u1"
        )
    );
    assert_eq!(g0.6, None);
    assert_eq!(g0.7, 0);
    assert_eq!(g0.8, grants()[0].encode_to_vec());
    let g2 = &rows[2];
    assert_eq!(g2.5, "role:r1:assigned:group:g2");
    let exp = pb::GrantExpandable::decode(g2.6.as_deref().unwrap()).unwrap();
    assert_eq!(exp.entitlement_ids, vec!["group:g2:member".to_string()]);
    assert_eq!(exp.resource_type_ids, vec!["user".to_string()]);
    assert_eq!(g2.7, 1);
    let blob = pb::Grant::decode(g2.8.as_slice()).unwrap();
    assert!(!annotations::contains::<pb::GrantExpandable>(
        &blob.annotations
    ));
    assert!(annotations::contains::<pb::GrantImmutable>(
        &blob.annotations
    ));
    assert!(
        !g2.8
            .windows(b"GrantExpandable".len())
            .any(|w| w == b"GrantExpandable")
    );

    // Blobs are the deterministic encodings of the messages.
    let rt_blob: Vec<u8> = conn
        .query_row(
            "select data from v1_resource_types order by id limit 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rt_blob, resource_types()[0].encode_to_vec());

    // Partial indexes are usable.
    let n: i64 = conn
        .query_row(
            "select count(*) from v1_grants where sync_id = ?1 and needs_expansion = 1",
            params![sync_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn assert_db_time_format(s: &str) {
    let b = s.as_bytes();
    assert!(b.len() >= 19, "{s}");
    for (i, c) in b[..19].iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{s}"),
            10 => assert_eq!(*c, b' ', "{s}"),
            13 | 16 => assert_eq!(*c, b':', "{s}"),
            _ => assert!(c.is_ascii_digit(), "{s}"),
        }
    }
    if b.len() > 19 {
        assert_eq!(b[19], b'.', "{s}");
        let frac = &s[20..];
        assert!(!frac.is_empty() && frac.len() <= 9, "{s}");
        assert!(frac.bytes().all(|c| c.is_ascii_digit()), "{s}");
        assert!(!frac.ends_with('0'), "trailing zero in {s}");
    }
}

#[test]
fn expansion_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.c1z");
    let mut w = C1zWriter::create(&path).unwrap();
    let sync_id = w.sync_id().to_string();
    let ents = entitlements();
    let mut blank = grant(&ents[0], &group("g2"));
    blank
        .annotations
        .push(annotations::pack(&pb::GrantExpandable {
            entitlement_ids: vec!["  ".into(), String::new()],
            ..Default::default()
        }));
    let plain = grant(&ents[1], &user("u1", "a@b.c"));
    w.put_grants(&[blank, plain]).unwrap();
    let (s0, e0) = times();
    w.finish(s0, e0).unwrap();

    let r = C1zReader::open(&path).unwrap();
    let g = r.grants(&sync_id).unwrap();
    // Blank ids: the expansion is kept but nothing needs expanding.
    assert_eq!(g[0].expansion.as_ref().unwrap().entitlement_ids.len(), 2);
    assert!(!g[0].needs_expansion);
    assert!(g[0].grant.annotations.is_empty());
    assert_eq!(g[1].expansion, None);
    assert!(!g[1].needs_expansion);
}

/// `principal` holds `ent` through the holders of `from` (users only).
fn expandable(
    ent: &pb::Entitlement,
    principal: &pb::Resource,
    from: &pb::Entitlement,
) -> pb::Grant {
    let mut g = grant(ent, principal);
    g.annotations.push(annotations::pack(&pb::GrantExpandable {
        entitlement_ids: vec![from.id.clone()],
        resource_type_ids: vec!["user".into()],
        ..Default::default()
    }));
    g
}

#[test]
fn expansion_follows_chains_and_settles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.c1z");
    let mut w = C1zWriter::create(&path).unwrap();
    let ents = entitlements();
    let (g1_member, g2_member, r1_assigned) = (&ents[0], &ents[1], &ents[2]);
    let ada = user("u1", "ada@example.com");
    w.put_resource_types(&resource_types()).unwrap();
    w.put_resources(&resources()).unwrap();
    w.put_entitlements(&ents).unwrap();
    // Stored so that the end of the chain (g2's members hold r1) is expanded first: only a
    // second round finds that Ada, a member of g1 and so of g2, holds r1 too.
    w.put_grants(&[
        expandable(r1_assigned, &group("g2"), g2_member),
        expandable(g2_member, &group("g1"), g1_member),
        grant(g1_member, &ada),
    ])
    .unwrap();
    assert_eq!(w.expand_grants(baton::c1z::expand::MAX_DEPTH).unwrap(), 2);
    // Expanding again changes nothing.
    assert_eq!(w.expand_grants(baton::c1z::expand::MAX_DEPTH).unwrap(), 0);
    let held: Vec<String> = [g2_member, r1_assigned]
        .iter()
        .map(|e| baton::ids::grant_id(&e.id, "user", "u1"))
        .filter_map(|id| w.grant(&id).unwrap())
        .map(|g| g.entitlement.unwrap().id)
        .collect();
    assert_eq!(held, [g2_member.id.clone(), r1_assigned.id.clone()]);

    // Without a chain, one round does it.
    let path = dir.path().join("y.c1z");
    let mut w = C1zWriter::create(&path).unwrap();
    w.put_resource_types(&resource_types()).unwrap();
    w.put_resources(&resources()).unwrap();
    w.put_entitlements(&ents).unwrap();
    w.put_grants(&[
        expandable(r1_assigned, &group("g2"), g2_member),
        grant(g2_member, &ada),
        grant(g2_member, &user("u2", "bob@example.com")),
    ])
    .unwrap();
    assert_eq!(w.expand_grants(baton::c1z::expand::MAX_DEPTH).unwrap(), 2);
}

#[test]
fn exact_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    write_sample(&path);
    let r = C1zReader::open(&path).unwrap();
    let schema = r.schema().unwrap();

    // (name, declared type, not null, default, primary key), straight from the spec.
    type Col = (&'static str, &'static str, bool, Option<&'static str>, bool);
    let pk: Col = ("id", "integer", false, None, true);
    let expected_tables: Vec<(&str, Vec<Col>)> = vec![
        (
            "v1_assets",
            vec![
                pk,
                ("external_id", "text", true, None, false),
                ("content_type", "text", true, None, false),
                ("data", "blob", true, None, false),
                ("sync_id", "text", true, None, false),
                ("discovered_at", "datetime", true, None, false),
            ],
        ),
        (
            "v1_connector_sessions",
            vec![
                pk,
                ("sync_id", "text", true, None, false),
                ("key", "text", true, None, false),
                ("value", "blob", true, None, false),
            ],
        ),
        (
            "v1_entitlements",
            vec![
                pk,
                ("resource_type_id", "text", true, None, false),
                ("resource_id", "text", true, None, false),
                ("external_id", "text", true, None, false),
                ("data", "blob", true, None, false),
                ("sync_id", "text", true, None, false),
                ("discovered_at", "datetime", true, None, false),
            ],
        ),
        (
            "v1_grants",
            vec![
                pk,
                ("resource_type_id", "text", true, None, false),
                ("resource_id", "text", true, None, false),
                ("entitlement_id", "text", true, None, false),
                ("principal_resource_type_id", "text", true, None, false),
                ("principal_resource_id", "text", true, None, false),
                ("external_id", "text", true, None, false),
                ("expansion", "blob", false, None, false),
                ("needs_expansion", "integer", true, Some("0"), false),
                ("data", "blob", true, None, false),
                ("sync_id", "text", true, None, false),
                ("discovered_at", "datetime", true, None, false),
            ],
        ),
        (
            "v1_resource_types",
            vec![
                pk,
                ("external_id", "text", true, None, false),
                ("data", "blob", true, None, false),
                ("sync_id", "text", true, None, false),
                ("discovered_at", "datetime", true, None, false),
            ],
        ),
        (
            "v1_resources",
            vec![
                pk,
                ("resource_type_id", "text", true, None, false),
                ("external_id", "text", true, None, false),
                ("parent_resource_type_id", "text", false, None, false),
                ("parent_resource_id", "text", false, None, false),
                ("data", "blob", true, None, false),
                ("sync_id", "text", true, None, false),
                ("discovered_at", "datetime", true, None, false),
            ],
        ),
        (
            "v1_sync_runs",
            vec![
                pk,
                ("sync_id", "text", true, None, false),
                ("started_at", "datetime", true, None, false),
                ("ended_at", "datetime", false, None, false),
                ("sync_token", "text", true, None, false),
                ("sync_type", "text", true, Some("'full'"), false),
                ("parent_sync_id", "text", true, Some("''"), false),
                ("linked_sync_id", "text", true, Some("''"), false),
                ("supports_diff", "integer", true, Some("0"), false),
                ("grants_backfilled", "integer", true, Some("0"), false),
                ("stats", "text", false, None, false),
                (
                    "ingest_invariant_generation",
                    "text",
                    true,
                    Some("''"),
                    false,
                ),
                ("ingest_invariant_coverage", "text", true, Some("''"), false),
                ("ingest_invariant_mode", "text", true, Some("''"), false),
            ],
        ),
    ];
    let actual_tables: Vec<(String, Vec<(String, String, bool, Option<String>, bool)>)> = schema
        .tables
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.columns
                    .iter()
                    .map(|c| {
                        (
                            c.name.clone(),
                            c.decl_type.to_ascii_lowercase(),
                            c.not_null,
                            c.default.clone(),
                            c.primary_key,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let expected_tables: Vec<(String, Vec<(String, String, bool, Option<String>, bool)>)> =
        expected_tables
            .into_iter()
            .map(|(n, cols)| {
                (
                    n.to_string(),
                    cols.into_iter()
                        .map(|(a, b, c, d, e)| (a.into(), b.into(), c, d.map(Into::into), e))
                        .collect(),
                )
            })
            .collect();
    assert_eq!(actual_tables, expected_tables);

    // (name, table, unique, columns, partial WHERE), straight from the spec.
    let expected_indexes: Vec<(&str, &str, bool, Vec<&str>, Option<&str>)> = vec![
        (
            "idx_assets_external_sync_v1",
            "v1_assets",
            true,
            vec!["external_id", "sync_id"],
            None,
        ),
        (
            "idx_entitlements_external_sync_v1",
            "v1_entitlements",
            true,
            vec!["external_id", "sync_id"],
            None,
        ),
        (
            "idx_entitlements_resource_id_v1",
            "v1_entitlements",
            false,
            vec!["resource_type_id", "resource_id"],
            None,
        ),
        (
            "idx_grants_entitlement_id_principal_id_v1",
            "v1_grants",
            false,
            vec![
                "entitlement_id",
                "principal_resource_type_id",
                "principal_resource_id",
            ],
            None,
        ),
        (
            "idx_grants_entitlement_sync_grant_v1",
            "v1_grants",
            false,
            vec!["entitlement_id", "sync_id", "id"],
            None,
        ),
        (
            "idx_grants_external_sync_v1",
            "v1_grants",
            true,
            vec!["external_id", "sync_id"],
            None,
        ),
        (
            "idx_grants_principal_id_v1",
            "v1_grants",
            false,
            vec!["principal_resource_type_id", "principal_resource_id"],
            None,
        ),
        (
            "idx_grants_resource_type_id_resource_id_v1",
            "v1_grants",
            false,
            vec!["resource_type_id", "resource_id"],
            None,
        ),
        (
            "idx_grants_sync_expansion_v1",
            "v1_grants",
            false,
            vec!["sync_id"],
            Some("expansion is not null"),
        ),
        (
            "idx_grants_sync_needs_expansion_v1",
            "v1_grants",
            false,
            vec!["sync_id"],
            Some("needs_expansion = 1"),
        ),
        (
            "idx_resource_types_external_sync_v1",
            "v1_resource_types",
            true,
            vec!["external_id", "sync_id"],
            None,
        ),
        // The two swapped names on v1_resources:
        (
            "idx_resources_external_sync_v1",
            "v1_resources",
            false,
            vec!["parent_resource_type_id", "parent_resource_id"],
            None,
        ),
        (
            "idx_resources_parent_resource_id_v1",
            "v1_resources",
            true,
            vec!["external_id", "sync_id"],
            None,
        ),
        (
            "idx_resources_resource_type_id_v1",
            "v1_resources",
            false,
            vec!["resource_type_id"],
            None,
        ),
        (
            "idx_session_store_sync_key_v1",
            "v1_connector_sessions",
            true,
            vec!["sync_id", "key"],
            None,
        ),
        (
            "idx_sync_runs_sync_id_v1",
            "v1_sync_runs",
            true,
            vec!["sync_id"],
            None,
        ),
    ];
    let actual_indexes: Vec<(String, String, bool, Vec<String>, Option<String>)> = schema
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.table.clone(),
                i.unique,
                i.columns.clone(),
                i.partial.as_ref().map(|p| p.to_ascii_lowercase()),
            )
        })
        .collect();
    let expected_indexes: Vec<(String, String, bool, Vec<String>, Option<String>)> =
        expected_indexes
            .into_iter()
            .map(|(a, b, c, d, e)| {
                (
                    a.into(),
                    b.into(),
                    c,
                    d.into_iter().map(Into::into).collect(),
                    e.map(Into::into),
                )
            })
            .collect();
    assert_eq!(actual_indexes, expected_indexes);
}

#[test]
fn envelope_is_magic_plus_one_zstd_frame_of_a_rollback_journal_sqlite_db() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let (sync_id, _, _) = write_sample(&path);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..5], b"C1ZF\0");
    let payload = &bytes[5..];
    assert_eq!(&payload[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
    // Exactly one frame, nothing after it.
    let frame_len = zstd::zstd_safe::find_frame_compressed_size(payload).unwrap();
    assert_eq!(frame_len, payload.len());
    // Decodes within the 128 MiB window limit.
    let mut dec = zstd::stream::read::Decoder::new(payload).unwrap();
    dec.window_log_max(27).unwrap();
    let mut db = Vec::new();
    std::io::Read::read_to_end(&mut dec, &mut db).unwrap();
    assert_eq!(&db[..16], b"SQLite format 3\0");
    // Header bytes 18/19 (write/read version): 1 = rollback journal, 2 = WAL.
    assert_eq!((db[18], db[19]), (1, 1));
    // Content size is declared and matches.
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(payload).unwrap(),
        Some(db.len() as u64)
    );

    let scratch = tempfile::tempdir().unwrap();
    let conn = open_raw(&path, scratch.path());
    let n: i64 = conn
        .query_row(
            "select count(*) from v1_grants where sync_id = ?1",
            params![sync_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
    let mode: String = conn
        .query_row("pragma journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_ne!(mode.to_ascii_lowercase(), "wal");
    let ok: String = conn
        .query_row("pragma integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn sync_id_is_a_fresh_ksuid() {
    let dir = tempfile::tempdir().unwrap();
    let before = chrono::Utc::now().timestamp();
    let w1 = C1zWriter::create(&dir.path().join("a.c1z")).unwrap();
    let w2 = C1zWriter::create(&dir.path().join("b.c1z")).unwrap();
    let after = chrono::Utc::now().timestamp();
    for id in [w1.sync_id(), w2.sync_id()] {
        assert_eq!(id.len(), 27);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
        let t = ksuid::unix_time(id).unwrap();
        assert!(t >= before && t <= after);
    }
    assert_ne!(w1.sync_id(), w2.sync_id());
}

#[test]
fn atomic_replace_and_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let old = b"previous contents, not a c1z".to_vec();
    fs::write(&path, &old).unwrap();

    // Dropped without finish.
    {
        let mut w = C1zWriter::create(&path).unwrap();
        w.put_resource_types(&resource_types()).unwrap();
        w.put_resources(&resources()).unwrap();
        assert_eq!(
            dir_entries(dir.path()).len(),
            2,
            "work dir exists meanwhile"
        );
    }
    assert_eq!(fs::read(&path).unwrap(), old);
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);

    // finish fails (ended before started).
    let mut w = C1zWriter::create(&path).unwrap();
    w.put_grants(&grants()).unwrap();
    let (start, end) = times();
    let err = w.finish(end, start).unwrap_err();
    assert!(format!("{err:#}").contains("ended"), "{err:#}");
    assert_eq!(fs::read(&path).unwrap(), old);
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);

    // A put that fails validation writes nothing and the writer stays usable.
    let mut w = C1zWriter::create(&path).unwrap();
    let mut bad = grants();
    bad[1].principal = None;
    let err = w.put_grants(&bad).unwrap_err();
    assert!(format!("{err:#}").contains("principal"), "{err:#}");
    w.put_resource_types(&resource_types()).unwrap();
    let sync_id = w.sync_id().to_string();
    w.finish(start, end).unwrap();
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);
    let r = C1zReader::open(&path).unwrap();
    assert!(r.grants(&sync_id).unwrap().is_empty());
    assert_eq!(r.resource_types(&sync_id).unwrap().len(), 4);

    // Writing a c1z again keeps the previous sync beside the new one, as Baton's cleanup does
    // (the newest two finished syncs by default).
    let (sync2, _, _) = write_sample(&path);
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);
    let r = C1zReader::open(&path).unwrap();
    let syncs: Vec<String> = r.syncs().unwrap().into_iter().map(|s| s.sync_id).collect();
    assert_eq!(syncs, vec![sync_id.clone(), sync2.clone()]);
    assert_eq!(r.latest_sync().unwrap().sync_id, sync2);
    // A third sync drops the oldest.
    let (sync3, _, _) = write_sample(&path);
    let r = C1zReader::open(&path).unwrap();
    let syncs: Vec<String> = r.syncs().unwrap().into_iter().map(|s| s.sync_id).collect();
    assert_eq!(syncs, vec![sync2, sync3]);
    assert!(
        r.resource_types(&sync_id).unwrap().is_empty(),
        "the oldest sync's rows are gone"
    );
}

#[test]
fn finish_fails_when_target_is_a_directory_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let w = C1zWriter::create(&path).unwrap();
    // The target becomes a non-empty directory after create: rename must fail.
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), b"x").unwrap();
    let (start, end) = times();
    let err = w.finish(start, end).unwrap_err();
    assert!(format!("{err:#}").contains("sync.c1z"), "{err:#}");
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);
    assert_eq!(fs::read(path.join("keep")).unwrap(), b"x");

    let err = C1zWriter::create(&path).unwrap_err();
    assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
}

#[test]
fn missing_or_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope").join("sync.c1z");
    let err = format!("{:#}", C1zWriter::create(&missing).unwrap_err());
    assert!(
        err.contains("does not exist") && err.contains("nope"),
        "{err}"
    );

    // /proc/self is a directory nobody (not even root) can create files in.
    let proc_path = PathBuf::from("/proc/self/sync.c1z");
    if Path::new("/proc/self").is_dir() {
        let err = format!("{:#}", C1zWriter::create(&proc_path).unwrap_err());
        assert!(
            err.contains("not writable") && err.contains("/proc/self"),
            "{err}"
        );
    }

    // A read-only directory (skipped when running as root, which ignores modes).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let probe_ok = fs::write(ro.join("probe"), b"").is_ok();
        if !probe_ok {
            let err = format!("{:#}", C1zWriter::create(&ro.join("sync.c1z")).unwrap_err());
            assert!(err.contains("not writable") && err.contains("ro"), "{err}");
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }

    // A parent that is a file.
    let file = dir.path().join("plain");
    fs::write(&file, b"").unwrap();
    let err = format!(
        "{:#}",
        C1zWriter::create(&file.join("sync.c1z")).unwrap_err()
    );
    assert!(err.contains("not a directory"), "{err}");
}

fn open_err(path: &Path) -> String {
    match C1zReader::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("{}: {msg}", path.display());
            msg
        }
    }
}

#[test]
fn corrupt_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    let err = open_err(&p("missing.c1z"));
    assert!(err.contains("does not exist"), "{err}");

    fs::write(p("empty.c1z"), b"").unwrap();
    let err = open_err(&p("empty.c1z"));
    assert!(err.contains("empty"), "{err}");

    fs::write(p("short.c1z"), b"C1").unwrap();
    let err = open_err(&p("short.c1z"));
    assert!(err.contains("C1ZF") && err.contains("too short"), "{err}");

    fs::write(p("wrong.c1z"), b"PK\x03\x04 zip file").unwrap();
    let err = open_err(&p("wrong.c1z"));
    assert!(
        err.contains("C1ZF") && err.contains("PK\\x03\\x04"),
        "{err}"
    );

    let mut v3 = b"C1Z3\0".to_vec();
    v3.extend_from_slice(&[0, 0, 0, 2, 0x0a, 0x00]);
    fs::write(p("v3.c1z"), &v3).unwrap();
    let err = open_err(&p("v3.c1z"));
    assert!(
        err.contains("C1Z3") && err.contains("v3") && err.contains("--storage-engine sqlite"),
        "{err}"
    );

    fs::write(p("magic_only.c1z"), b"C1ZF\0").unwrap();
    let err = open_err(&p("magic_only.c1z"));
    assert!(err.contains("truncated"), "{err}");

    fs::write(p("garbage.c1z"), b"C1ZF\0this is not zstd at all").unwrap();
    let err = open_err(&p("garbage.c1z"));
    assert!(err.contains("zstd"), "{err}");

    // Truncated valid file.
    write_sample(&p("good.c1z"));
    let good = fs::read(p("good.c1z")).unwrap();
    for cut in [good.len() / 2, good.len() - 1, 9] {
        fs::write(p("trunc.c1z"), &good[..cut]).unwrap();
        let err = open_err(&p("trunc.c1z"));
        assert!(
            err.contains("zstd") || err.contains("truncated"),
            "cut {cut}: {err}"
        );
    }

    // A bit flip inside the compressed data (checksum or block decode must catch it).
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    fs::write(p("flip.c1z"), &flipped).unwrap();
    assert!(C1zReader::open(&p("flip.c1z")).is_err());

    // zstd of bytes that are not SQLite.
    let mut not_db = b"C1ZF\0".to_vec();
    not_db.extend(zstd::stream::encode_all(&b"hello, not a database"[..], 3).unwrap());
    fs::write(p("notdb.c1z"), &not_db).unwrap();
    let err = open_err(&p("notdb.c1z"));
    assert!(
        err.contains("not a SQLite database") && err.contains("hello"),
        "{err}"
    );

    // zstd of an empty payload.
    let mut empty_payload = b"C1ZF\0".to_vec();
    empty_payload.extend(zstd::stream::encode_all(&b""[..], 3).unwrap());
    fs::write(p("emptypayload.c1z"), &empty_payload).unwrap();
    let err = open_err(&p("emptypayload.c1z"));
    assert!(err.contains("not a SQLite database"), "{err}");

    // SQLite header followed by garbage.
    let mut fake = b"SQLite format 3\0".to_vec();
    fake.extend(std::iter::repeat_n(0xabu8, 8192));
    let mut fake_c1z = b"C1ZF\0".to_vec();
    fake_c1z.extend(zstd::stream::encode_all(fake.as_slice(), 3).unwrap());
    fs::write(p("fake.c1z"), &fake_c1z).unwrap();
    let err = open_err(&p("fake.c1z"));
    assert!(err.contains("SQLite"), "{err}");

    // A real SQLite database without the v1 tables.
    let db = p("other.db");
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch("create table something (x integer); insert into something values (1);")
            .unwrap();
    }
    package_db(&db, &p("other.c1z"));
    let err = open_err(&p("other.c1z"));
    assert!(
        err.contains("missing table") && err.contains("v1_grants"),
        "{err}"
    );

    // A bare zstd stream (no header) and a raw SQLite file.
    fs::write(p("bare.c1z"), &good[5..]).unwrap();
    let err = open_err(&p("bare.c1z"));
    assert!(err.contains("bare zstd"), "{err}");
    fs::copy(&db, p("raw.c1z")).unwrap();
    let err = open_err(&p("raw.c1z"));
    assert!(err.contains("uncompressed SQLite"), "{err}");

    // A directory.
    let err = open_err(dir.path());
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn declared_content_size_above_limit_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.c1z");
    // A frame header declaring 11 GiB of content (single-segment off, FCS 8 bytes).
    let mut bytes = b"C1ZF\0".to_vec();
    bytes.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
    bytes.push(0b1100_0000); // FCS field size 8 bytes, no single segment, no checksum
    bytes.push(0x58); // window descriptor: 2^(10+11) = 2 MiB
    bytes.extend_from_slice(&(11u64 * 1024 * 1024 * 1024).to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0]);
    fs::write(&path, &bytes).unwrap();
    let err = open_err(&path);
    assert!(err.contains("limit"), "{err}");
}

#[test]
fn upsert_replaces_grant_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let mut w = C1zWriter::create(&path).unwrap();
    let sync_id = w.sync_id().to_string();
    let gs = grants();
    w.put_grants(&gs).unwrap();

    // Grant expansion rewrites grant 0 (sources) and grant 2 (without its GrantExpandable).
    let mut g0 = gs[0].clone();
    g0.sources = Some(pb::GrantSources {
        sources: [
            (
                g0.entitlement.as_ref().unwrap().id.clone(),
                pb::grant_sources::GrantSource { is_direct: true },
            ),
            (
                "group:g2:member".to_string(),
                pb::grant_sources::GrantSource { is_direct: false },
            ),
        ]
        .into_iter()
        .collect(),
    });
    let mut g2 = gs[2].clone();
    annotations::remove::<pb::GrantExpandable>(&mut g2.annotations);
    g2.sources = Some(pb::GrantSources::default());
    w.put_grants(&[g2.clone(), g0.clone()]).unwrap();

    // Resources too: the second put replaces the first.
    let mut u = user("u1", "ada@example.com");
    w.put_resources(std::slice::from_ref(&u)).unwrap();
    u.display_name = "Renamed".into();
    u.parent_resource_id = None;
    w.put_resources(std::slice::from_ref(&u)).unwrap();

    let (start, end) = times();
    w.finish(start, end).unwrap();

    let r = C1zReader::open(&path).unwrap();
    let stored = r.grants(&sync_id).unwrap();
    assert_eq!(stored.len(), 3, "no duplicate rows");
    // Row order (rowid) is kept; content is replaced.
    assert_eq!(stored[0].grant, g0);
    assert_eq!(stored[1].grant, gs[1]);
    assert_eq!(stored[2].grant, g2);
    // The re-put without GrantExpandable keeps the expansion columns.
    assert!(stored[2].needs_expansion);
    assert_eq!(
        stored[2].expansion.as_ref().unwrap().entitlement_ids,
        vec!["group:g2:member".to_string()]
    );

    let res = r.resources(&sync_id).unwrap();
    assert_eq!(res.len(), 1);
    assert_eq!(res[0].display_name, "Renamed");
    let scratch = tempfile::tempdir().unwrap();
    let conn = open_raw(&path, scratch.path());
    let parent: Option<String> = conn
        .query_row("select parent_resource_id from v1_resources", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(parent, None);
}

#[test]
fn reader_picks_the_right_sync_and_filters_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("multi.db");
    let conn = Connection::open(&db).unwrap();
    for stmt in baton::c1z::schema::DDL {
        conn.execute(stmt, []).unwrap();
    }
    let rt = |id: &str| {
        pb::ResourceType {
            id: id.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let runs: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "2AAAAAAAAAAAAAAAAAAAAAAAAAA",
            "2026-01-01 10:00:00",
            Some("2026-01-01 11:00:00"),
            "full",
        ),
        (
            "2BBBBBBBBBBBBBBBBBBBBBBBBBB",
            "2026-01-02 10:00:00",
            Some("2026-01-02 11:00:00.5"),
            "full",
        ),
        (
            "2CCCCCCCCCCCCCCCCCCCCCCCCCC",
            "2026-01-03 10:00:00",
            Some("2026-01-03 11:00:00"),
            "partial",
        ),
        (
            "2DDDDDDDDDDDDDDDDDDDDDDDDDD",
            "2026-01-04 10:00:00",
            None,
            "full",
        ),
    ];
    for (id, s, e, t) in runs {
        conn.execute(
            "insert into v1_sync_runs (sync_id, started_at, ended_at, sync_token, sync_type, supports_diff)
             values (?1, ?2, ?3, '', ?4, 0)",
            params![id, s, e, t],
        )
        .unwrap();
        for n in ["b", "a"] {
            conn.execute(
                "insert into v1_resource_types (external_id, data, sync_id, discovered_at) values (?1, ?2, ?3, ?4)",
                params![format!("{n}-{id}"), rt(&format!("{n}-{id}")), id, s],
            )
            .unwrap();
        }
    }
    drop(conn);
    let path = dir.path().join("multi.c1z");
    package_db(&db, &path);

    let r = C1zReader::open(&path).unwrap();
    let syncs = r.syncs().unwrap();
    assert_eq!(syncs.len(), 4);
    assert_eq!(syncs[3].ended_at, None);
    assert!(!syncs[0].supports_diff);
    let latest = r.latest_sync().unwrap();
    assert_eq!(latest.sync_id, "2BBBBBBBBBBBBBBBBBBBBBBBBBB");
    assert_eq!(latest.ended_at.as_deref(), Some("2026-01-02 11:00:00.5"));
    let types = r.resource_types(&latest.sync_id).unwrap();
    let ids: Vec<&str> = types.iter().map(|t| t.id.as_str()).collect();
    // Filtered on sync_id, in rowid order (not sorted by name).
    assert_eq!(
        ids,
        vec![
            "b-2BBBBBBBBBBBBBBBBBBBBBBBBBB",
            "a-2BBBBBBBBBBBBBBBBBBBBBBBBBB"
        ]
    );
    drop(r);

    // Only unfinished syncs: the latest unfinished one.
    let conn = Connection::open(&db).unwrap();
    conn.execute("update v1_sync_runs set ended_at = null", [])
        .unwrap();
    drop(conn);
    package_db(&db, &path);
    let r = C1zReader::open(&path).unwrap();
    assert_eq!(
        r.latest_sync().unwrap().sync_id,
        "2DDDDDDDDDDDDDDDDDDDDDDDDDD"
    );
    drop(r);

    // No syncs at all.
    let conn = Connection::open(&db).unwrap();
    conn.execute("delete from v1_sync_runs", []).unwrap();
    drop(conn);
    package_db(&db, &path);
    let r = C1zReader::open(&path).unwrap();
    let err = format!("{:#}", r.latest_sync().unwrap_err());
    assert!(err.contains("no sync"), "{err}");
}

#[test]
fn legacy_grants_without_expansion_columns() {
    // An old-layout v1_grants (no expansion columns) with GrantExpandable inside the blob.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let conn = Connection::open(&db).unwrap();
    for stmt in baton::c1z::schema::DDL {
        if stmt.contains("v1_grants") {
            continue;
        }
        conn.execute(stmt, []).unwrap();
    }
    conn.execute_batch(
        "create table v1_grants (id integer primary key, resource_type_id text not null,
            resource_id text not null, entitlement_id text not null,
            principal_resource_type_id text not null, principal_resource_id text not null,
            external_id text not null, data blob not null, sync_id text not null,
            discovered_at datetime not null);
         insert into v1_sync_runs (sync_id, started_at, ended_at, sync_token)
            values ('S', '2026-01-01 00:00:00', '2026-01-01 00:00:01', '');",
    )
    .unwrap();
    let g = &grants()[2];
    conn.execute(
        "insert into v1_grants (resource_type_id, resource_id, entitlement_id,
            principal_resource_type_id, principal_resource_id, external_id, data, sync_id,
            discovered_at) values ('role', 'r1', 'role:r1:assigned', 'group', 'g2', ?1, ?2, 'S', '2026-01-01 00:00:00')",
        params![g.id, g.encode_to_vec()],
    )
    .unwrap();
    drop(conn);
    let path = dir.path().join("old.c1z");
    package_db(&db, &path);
    let r = C1zReader::open(&path).unwrap();
    let stored = r.grants("S").unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].needs_expansion);
    assert_eq!(
        stored[0].expansion.as_ref().unwrap().entitlement_ids,
        vec!["group:g2:member".to_string()]
    );
    assert!(!annotations::contains::<pb::GrantExpandable>(
        &stored[0].grant.annotations
    ));
    assert_eq!(r.stats("S").unwrap().grants, 1);
}

#[test]
fn hundred_thousand_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.c1z");
    let started = std::time::Instant::now();
    let start_time = Local::now();
    let mut w = C1zWriter::create(&path).unwrap();
    let sync_id = w.sync_id().to_string();
    let ents = entitlements();
    let slim_user = |i: usize| pb::Resource {
        id: Some(rid("user", &format!("u{i}"))),
        display_name: format!("User {i}"),
        ..Default::default()
    };
    const N: usize = 100_000;
    let batch = 10_000;
    for chunk in 0..N / batch {
        let gs: Vec<pb::Grant> = (chunk * batch..(chunk + 1) * batch)
            .map(|i| grant(&ents[i % ents.len()], &slim_user(i)))
            .collect();
        w.put_grants(&gs).unwrap();
    }
    let out = w.finish(start_time, Local::now()).unwrap();
    let write_time = started.elapsed();
    let size = fs::metadata(&out).unwrap().len();

    let t = std::time::Instant::now();
    let r = C1zReader::open(&out).unwrap();
    let st = r.stats(&sync_id).unwrap();
    assert_eq!(st.grants, N as u64);
    let all = r.grants(&sync_id).unwrap();
    assert_eq!(all.len(), N);
    assert_eq!(
        all[12_345].grant.principal.as_ref().unwrap().display_name,
        "User 12345"
    );
    eprintln!(
        "100k grants: write {write_time:?}, {size} bytes compressed, open+read {:?}",
        t.elapsed()
    );
    assert_eq!(dir_entries(dir.path()), vec!["big.c1z"]);
}

fn resumable_options() -> baton::c1z::WriterOptions {
    baton::c1z::WriterOptions {
        resume_within: Some(baton::c1z::RESUME_WITHIN),
        identity: "origin and credential".into(),
        ..Default::default()
    }
}

/// A writer that is never dropped, as when the process is killed.
fn kill(w: C1zWriter) {
    std::mem::forget(w);
}

/// While the work is in memory, checkpoints are kept aside and reach the database when it
/// moves to disk: the last committed one, never one of a batch that was dropped.
#[test]
fn a_sync_stopped_in_memory_resumes_from_its_last_committed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let mut w = C1zWriter::open(&path, &resumable_options()).unwrap();
    assert!(!w.on_disk());
    let mut batch = w.batch().unwrap();
    batch.put_resource(&resources()[0]).unwrap();
    batch.checkpoint("first page").unwrap();
    batch.commit().unwrap();
    let mut batch = w.batch().unwrap();
    batch.put_resource(&resources()[1]).unwrap();
    batch.checkpoint("second page, never committed").unwrap();
    drop(batch);
    drop(w);
    let w = C1zWriter::open(&path, &resumable_options()).unwrap();
    assert_eq!(
        w.start(),
        &baton::c1z::Start::Resumed {
            checkpoint: "first page".into()
        }
    );
}

#[test]
fn a_second_sync_of_the_same_file_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let first = C1zWriter::open(&path, &resumable_options()).unwrap();
    let err = C1zWriter::open(&path, &resumable_options()).unwrap_err();
    assert!(
        format!("{err:#}").contains("another sync is writing"),
        "{err:#}"
    );
    drop(first);
    C1zWriter::open(&path, &resumable_options()).unwrap();
}

#[test]
fn a_small_sync_stays_in_memory_and_a_stopped_one_is_kept_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let work = dir.path().join(".sync.c1z.work");
    let options = resumable_options();

    let mut w = C1zWriter::open(&path, &options).unwrap();
    assert!(!w.on_disk());
    let mut batch = w.batch().unwrap();
    for r in resources() {
        batch.put_resource(&r).unwrap();
    }
    batch.checkpoint("after the resources").unwrap();
    batch.commit().unwrap();
    w.flush().unwrap();
    // Nothing is written while the work is small and young (the directory itself is locked).
    assert!(dir_entries(&work).is_empty());

    // Stopped (an error, a deadline, Ctrl-C): the work goes to disk, to be resumed.
    drop(w);
    assert_eq!(dir_entries(&work), vec!["db", "owner"]);
    let w = C1zWriter::open(&path, &options).unwrap();
    assert!(w.on_disk());
    assert_eq!(
        w.start(),
        &baton::c1z::Start::Resumed {
            checkpoint: "after the resources".into()
        }
    );
    let first = &resources()[0];
    let id = first.id.as_ref().unwrap();
    assert_eq!(
        w.resource(&id.resource_type, &id.resource)
            .unwrap()
            .as_ref(),
        Some(first)
    );
    let (start, end) = times();
    w.finish(start, end).unwrap();
    assert_eq!(dir_entries(dir.path()), vec!["sync.c1z"]);

    // Killed while the work is in memory: nothing is left to resume, and the next sync
    // starts over.
    let mut w = C1zWriter::open(&path, &options).unwrap();
    let mut batch = w.batch().unwrap();
    batch.checkpoint("lost").unwrap();
    batch.commit().unwrap();
    kill(w);
    assert!(!work.join("owner").exists());
}

#[test]
fn a_sync_that_outgrows_memory_moves_to_disk_and_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sync.c1z");
    let work = dir.path().join(".sync.c1z.work");
    let mut w = C1zWriter::open(&path, &resumable_options()).unwrap();
    w.put_resource_types(&resource_types()).unwrap();
    // Resources of 1 MiB each, past the memory limit.
    let template = resources()[0].clone();
    let count = (baton::c1z::MEMORY_LIMIT >> 20) + 2;
    for i in 0..count {
        let mut r = template.clone();
        r.id.as_mut().unwrap().resource = format!("big-{i}");
        r.description = "x".repeat(1 << 20);
        let mut batch = w.batch().unwrap();
        batch.put_resource(&r).unwrap();
        batch.checkpoint(&format!("after {i}")).unwrap();
        batch.commit().unwrap();
    }
    // (The size is looked up every few calls.)
    assert!(!w.on_disk() && (0..16).any(|_| w.due_for_disk().unwrap()));
    // The next batch after a group commit moves the work to disk first.
    w.flush().unwrap();
    let batch = w.batch().unwrap();
    drop(batch);
    assert!(w.on_disk());
    w.flush().unwrap();
    kill(w);

    // What a process started after the kill finds (a copy: this process still holds the
    // killed writer's lock).
    let found = tempfile::tempdir().unwrap();
    for file in ["db", "db-wal"] {
        if work.join(file).exists() {
            fs::copy(work.join(file), found.path().join(file)).unwrap();
        }
    }
    let db = Connection::open(found.path().join("db")).unwrap();
    let token: String = db
        .query_row(
            "select sync_token from v1_sync_runs where ended_at is null",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(token, format!("after {}", count - 1));
    let big: i64 = db
        .query_row(
            "select count(*) from v1_resources where external_id like '%big-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(big, count as i64);
    assert_eq!(
        fs::read_to_string(work.join("owner")).unwrap(),
        "origin and credential"
    );
}
