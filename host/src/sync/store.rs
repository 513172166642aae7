//! What a sync has collected, kept in the `.c1z`'s own database as pages arrive (never all in
//! memory): each page is checked (no resource of an undeclared type or without its type's
//! trait, no entitlement on a resource that was not listed), converted to Baton's messages
//! (an entitlement embeds its resource, a grant its entitlement and principal, looked up in
//! what is stored), and written in one transaction with the sync's checkpoint.

use super::checkpoint::Checkpoint;
use crate::engine::contract::{
    Entitlement, GrantRecord, Resource, ResourceId, ResourceTrait, ResourceType, SyncHints,
    TraitKind,
};
use crate::engine::to_c1z;
use anyhow::Context as _;
use baton::c1z::{Batch, C1zWriter, EncodedEntitlement, EncodedGrant, Start, WriterOptions};
use baton::pb;
use prost::Message as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a page was not stored.
#[derive(Debug)]
pub enum StoreError {
    /// The connector's answer breaks the model (the sync must not go on with it).
    Invalid(String),
    /// The database failed.
    Io(anyhow::Error),
}

impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> Self {
        StoreError::Io(e)
    }
}

/// Looked-up messages kept for the next pages (a page's grants mostly share entitlements);
/// bounded, so memory does not grow with the workspace.
const CACHE_ENTRIES: usize = 4096;

/// Encoded grant principals kept (a few hundred bytes each: about 10 MiB at most). A
/// workspace's users are each the principal of grants on many groups and roles.
const PRINCIPAL_ENTRIES: usize = 16_384;

pub struct SyncStore {
    writer: C1zWriter,
    types: Vec<ResourceType>,
    pb_types: Vec<pb::ResourceType>,
    resources: HashMap<String, pb::Resource>,
    /// Entitlements and principals as grants embed them, encoded once.
    entitlements: HashMap<String, Arc<EncodedEntitlement>>,
    principals: HashMap<String, Arc<[u8]>>,
    /// Grants naming an entitlement that was never listed (left out): how many, and a few ids.
    dangling: (usize, Vec<String>),
}

impl SyncStore {
    /// Opens the sync that will replace `path` (resuming an interrupted one when `options`
    /// allow): the store, and the checkpoint to resume from, if any.
    pub fn open(
        path: &Path,
        options: &WriterOptions,
    ) -> anyhow::Result<(SyncStore, Option<Checkpoint>)> {
        let writer = C1zWriter::open(path, options)
            .with_context(|| format!("cannot write the output file {}", path.display()))?;
        let checkpoint = match writer.start() {
            Start::Fresh => None,
            Start::Resumed { checkpoint } => Checkpoint::decode(checkpoint),
        };
        let mut store = SyncStore {
            writer,
            types: vec![],
            pb_types: vec![],
            resources: HashMap::new(),
            entitlements: HashMap::new(),
            principals: HashMap::new(),
            dangling: (0, vec![]),
        };
        if checkpoint.is_some() {
            store.pb_types = store.writer.resource_types()?;
            store.types = store
                .pb_types
                .iter()
                .map(ResourceType::try_from)
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("the interrupted sync's resource types: {e}"))?;
        }
        Ok((store, checkpoint))
    }

    pub fn sync_id(&self) -> &str {
        self.writer.sync_id()
    }

    /// When the sync started (an interrupted sync's first start, when it resumes).
    pub fn started_at(&self) -> anyhow::Result<chrono::DateTime<chrono::Local>> {
        let text = self.writer.started_at()?;
        baton::c1z::timefmt::parse_db_time(&text)
            .ok_or_else(|| anyhow::anyhow!("the sync's start time {text:?} is not readable"))
    }

    pub fn path(&self) -> PathBuf {
        self.writer.path().to_path_buf()
    }

    /// The sync's private work directory (the session store goes there too).
    pub fn work_dir(&self) -> &Path {
        self.writer.work_dir()
    }

    /// Whether the sync's work is on disk yet (a small sync's stays in memory, see
    /// [`baton::c1z::MEMORY_LIMIT`]).
    pub fn on_disk(&self) -> bool {
        self.writer.on_disk()
    }

    /// Whether the work moves to disk with the next page (see [`SyncStore::on_disk`]).
    pub fn due_for_disk(&self) -> anyhow::Result<bool> {
        self.writer.due_for_disk()
    }

    /// Moves the work to disk now, for a sync that stops and will resume.
    pub fn keep_for_resume(&mut self) -> anyhow::Result<()> {
        self.writer.move_to_disk()
    }

    pub fn resource_types(&self) -> &[ResourceType] {
        &self.types
    }

    pub fn resource_type(&self, id: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.id == id)
    }

    /// Whether `resource` (or its type) says to skip `hint`'s listing.
    pub fn skips(&self, resource: &Resource, hint: SyncHints) -> bool {
        resource.hints.contains(hint)
            || self
                .resource_type(&resource.id.resource_type)
                .is_some_and(|t| t.hints.contains(hint))
    }

    /// Stores the resource types and the first checkpoint.
    pub fn set_resource_types(
        &mut self,
        types: Vec<ResourceType>,
        checkpoint: &Checkpoint,
    ) -> anyhow::Result<()> {
        self.pb_types = types.iter().map(Into::into).collect();
        self.types = types;
        write_page(&mut self.writer, &self.pb_types, checkpoint, |b, t| {
            b.put_resource_type(t)
        })
    }

    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        let mut batch = self.writer.batch()?;
        batch.checkpoint(&checkpoint.encode())?;
        batch.commit()
    }

    /// Stores a page of resources listed as `listed_type`; returns how many it held.
    pub fn put_resources(
        &mut self,
        listed_type: &str,
        items: Vec<Resource>,
        checkpoint: &Checkpoint,
    ) -> Result<usize, StoreError> {
        let mut messages = Vec::with_capacity(items.len());
        for r in &items {
            self.check_resource(listed_type, r)
                .map_err(StoreError::Invalid)?;
            messages.push(pb::Resource::from(r));
        }
        write_page(&mut self.writer, &messages, checkpoint, |b, m| {
            b.put_resource(m)
        })?;
        for m in messages {
            if let Some(id) = &m.id {
                let key = baton::ids::resource_key(&id.resource_type, &id.resource);
                // A listing again replaces what was looked up before.
                self.resources.remove(&key);
            }
        }
        Ok(items.len())
    }

    fn check_resource(&self, listed_type: &str, r: &Resource) -> Result<(), String> {
        let show = show(&r.id);
        if r.id.resource_type != listed_type {
            return Err(format!("asked for {listed_type}, got resource {show}"));
        }
        let Some(rtype) = self.resource_type(&r.id.resource_type) else {
            return Err(format!(
                "resource {show} has undeclared type {:?}",
                r.id.resource_type
            ));
        };
        // The Baton syncer refuses a resource that lacks the trait its type declares.
        for t in &rtype.traits {
            if !r.traits.iter().any(|rt| trait_kind(rt) == *t) {
                return Err(format!(
                    "resource {show} lacks the {t:?} trait its type declares"
                ));
            }
        }
        for child in &r.child_resource_types {
            if self.resource_type(child).is_none() {
                return Err(format!(
                    "resource {show} names undeclared child type {child:?}"
                ));
            }
        }
        Ok(())
    }

    /// Stores a page of entitlements, each embedding its (listed) resource.
    pub fn put_entitlements(
        &mut self,
        items: Vec<Entitlement>,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let mut messages = Vec::with_capacity(items.len());
        for e in &items {
            let resource = self.resource(&e.resource)?.ok_or_else(|| {
                StoreError::Invalid(format!(
                    "entitlement {} is on resource {}, which was not listed",
                    e.id,
                    show(&e.resource)
                ))
            })?;
            let types = &self.pb_types;
            let declared = |id: &str| types.iter().find(|t| t.id == id).cloned();
            messages.push(to_c1z::entitlement(e, resource, declared));
        }
        write_page(&mut self.writer, &messages, checkpoint, |b, m| {
            b.put_entitlement(m)
        })?;
        for m in &messages {
            self.entitlements.remove(&m.id);
        }
        Ok(())
    }

    /// Stores a page of grants, each embedding its entitlement and principal. A grant on an
    /// entitlement that was never listed is left out (and reported at the end).
    pub fn put_grants(
        &mut self,
        items: Vec<GrantRecord>,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(items.len());
        for g in &items {
            let Some(entitlement) = self.entitlement(&g.entitlement_id)? else {
                self.dangling.0 += 1;
                if self.dangling.1.len() < 5 {
                    self.dangling.1.push(g.id.clone());
                }
                continue;
            };
            let principal = self.principal(&g.principal)?;
            rows.push((g, entitlement, principal, to_c1z::grant_annotations(g)));
        }
        write_page(&mut self.writer, &rows, checkpoint, |b, (g, e, p, a)| {
            b.put_encoded_grant(&EncodedGrant {
                id: &g.id,
                entitlement: e,
                principal: (&g.principal.resource_type, &g.principal.resource),
                principal_data: p,
                annotations: a,
                sources: None,
            })
        })?;
        Ok(())
    }

    /// Up to `limit` stored resources (of type `of_type`, when given) after row `after`, with
    /// their rows.
    pub fn resources_after(
        &self,
        after: i64,
        limit: usize,
        of_type: Option<&str>,
    ) -> anyhow::Result<Vec<(i64, Resource)>> {
        self.writer
            .resources_after(after, limit, of_type)?
            .into_iter()
            .map(|(row, r)| {
                Resource::try_from(&r)
                    .map(|r| (row, r))
                    .map_err(|e| anyhow::anyhow!("stored resource row {row}: {e}"))
            })
            .collect()
    }

    /// The stored resource in `row`.
    pub fn resource_row(&self, row: i64) -> anyhow::Result<Resource> {
        let r = self
            .writer
            .resource_row(row)?
            .ok_or_else(|| anyhow::anyhow!("the sync's resource row {row} is gone"))?;
        Resource::try_from(&r).map_err(|e| anyhow::anyhow!("stored resource row {row}: {e}"))
    }

    fn resource(&mut self, id: &ResourceId) -> anyhow::Result<Option<pb::Resource>> {
        let key = baton::ids::resource_key(&id.resource_type, &id.resource);
        if let Some(r) = self.resources.get(&key) {
            return Ok(Some(r.clone()));
        }
        let found = self.writer.resource(&id.resource_type, &id.resource)?;
        if let Some(r) = &found {
            if self.resources.len() >= CACHE_ENTRIES {
                self.resources.clear();
            }
            self.resources.insert(key, r.clone());
        }
        Ok(found)
    }

    /// A stored entitlement as grants embed it.
    fn entitlement(&mut self, id: &str) -> anyhow::Result<Option<Arc<EncodedEntitlement>>> {
        if let Some(e) = self.entitlements.get(id) {
            return Ok(Some(e.clone()));
        }
        let Some(found) = self.writer.entitlement(id)? else {
            return Ok(None);
        };
        let encoded = Arc::new(EncodedEntitlement::of(&found)?);
        if self.entitlements.len() >= CACHE_ENTRIES {
            self.entitlements.clear();
        }
        self.entitlements.insert(id.to_string(), encoded.clone());
        Ok(Some(encoded))
    }

    /// A grant's principal as grants embed it: the stored resource, or a stub of its id.
    fn principal(&mut self, id: &ResourceId) -> anyhow::Result<Arc<[u8]>> {
        let key = baton::ids::resource_key(&id.resource_type, &id.resource);
        if let Some(p) = self.principals.get(&key) {
            return Ok(p.clone());
        }
        let Some(found) = self.writer.resource(&id.resource_type, &id.resource)? else {
            return Ok(to_c1z::resource_stub(id).encode_to_vec().into());
        };
        let encoded: Arc<[u8]> = found.encode_to_vec().into();
        if self.principals.len() >= PRINCIPAL_ENTRIES {
            self.principals.clear();
        }
        self.principals.insert(key, encoded.clone());
        Ok(encoded)
    }

    /// The grants that named an unlisted entitlement, as a warning (none if there were none).
    pub fn dangling_warning(&self) -> Option<String> {
        let (n, examples) = &self.dangling;
        (*n > 0).then(|| {
            format!(
                "{n} grant(s) named an entitlement the connector never listed and were left out (e.g. {})",
                examples.join(", ")
            )
        })
    }

    /// Keeps only the resources and resource types the sync covers (a partial sync walks
    /// through others to reach them).
    pub fn retain(
        &mut self,
        keep: impl Fn(&ResourceId) -> bool,
        keep_type: impl Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        let mut doomed = vec![];
        let mut after = 0;
        loop {
            let rows = self.resources_after(after, 512, None)?;
            let Some((last, _)) = rows.last() else { break };
            after = *last;
            doomed.extend(
                rows.iter()
                    .filter(|(_, r)| !keep(&r.id))
                    .map(|(_, r)| baton::ids::resource_key(&r.id.resource_type, &r.id.resource)),
            );
        }
        let types: Vec<String> = self
            .types
            .iter()
            .filter(|t| !keep_type(&t.id))
            .map(|t| t.id.clone())
            .collect();
        self.writer.delete(&doomed, &types)?;
        self.types.retain(|t| keep_type(&t.id));
        self.pb_types.retain(|t| keep_type(&t.id));
        self.resources.clear();
        Ok(())
    }

    /// Baton's grant expansion over what is stored; returns how many grants it created.
    pub fn expand(&mut self) -> anyhow::Result<usize> {
        self.writer
            .expand_grants(baton::c1z::expand::MAX_DEPTH)
            .context("expanding grants")
    }

    /// Resource counts per type (in the order the types were declared), entitlements, grants.
    pub fn counts(&self) -> anyhow::Result<Counted> {
        let counts = self.writer.counts()?;
        let per_type: HashMap<&str, u64> = counts
            .resources
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect();
        Ok(Counted {
            resources_by_type: self
                .types
                .iter()
                .map(|t| {
                    (
                        t.id.clone(),
                        per_type.get(t.id.as_str()).copied().unwrap_or(0) as usize,
                    )
                })
                .collect(),
            entitlements: counts.entitlements as usize,
            grants: counts.grants as usize,
        })
    }

    /// The first stored resource of `resource_type` (the workspace, for a summary).
    pub fn first_of_type(&self, resource_type: &str) -> anyhow::Result<Option<Resource>> {
        let first = self.resources_after(0, 1, Some(resource_type))?;
        Ok(first.into_iter().next().map(|(_, r)| r))
    }

    /// Ends the sync and writes the `.c1z` (see [`C1zWriter::finish`]).
    pub fn finish(
        self,
        started: chrono::DateTime<chrono::Local>,
        ended: chrono::DateTime<chrono::Local>,
    ) -> anyhow::Result<PathBuf> {
        let path = self.path();
        let writing = std::time::Instant::now();
        let written = self
            .writer
            .finish(started, ended)
            .with_context(|| format!("writing {}", path.display()));
        tracing::debug!(
            seconds = writing.elapsed().as_secs_f64(),
            "the .c1z file written"
        );
        written
    }
}

/// Row counts of a sync.
#[derive(Debug, Clone, Default)]
pub struct Counted {
    pub resources_by_type: Vec<(String, usize)>,
    pub entitlements: usize,
    pub grants: usize,
}

/// Writes a page of `records`, each with `put`, and the checkpoint after it in one
/// transaction.
fn write_page<T>(
    writer: &mut C1zWriter,
    records: &[T],
    checkpoint: &Checkpoint,
    put: impl Fn(&mut Batch<'_>, &T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut batch = writer.batch()?;
    for r in records {
        put(&mut batch, r)?;
    }
    batch.checkpoint(&checkpoint.encode())?;
    batch.commit()
}

pub fn show(id: &ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

fn trait_kind(t: &ResourceTrait) -> TraitKind {
    match t {
        ResourceTrait::User(_) => TraitKind::User,
        ResourceTrait::Group(_) => TraitKind::Group,
        ResourceTrait::Role(_) => TraitKind::Role,
        ResourceTrait::App(_) => TraitKind::App,
    }
}
