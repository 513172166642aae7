//! Grant expansion (Baton's last sync phase, baton-sdk §3.4), over the database: a grant marked
//! expandable says "holders of these source entitlements also hold this one". Each holder gets a
//! derived grant (immutable, recorded with the source it came from); an existing grant gets its
//! sources merged instead. Holders are read in batches by row, so memory does not grow with the
//! workspace.

use super::C1zWriter;
use crate::{Result, annotations, pb};
use anyhow::Context;
use prost::Message;
use rusqlite::{OptionalExtension, params};

/// Baton's default limit on chains of expandable grants.
pub const MAX_DEPTH: usize = 20;

/// Holder grants read at once.
const BATCH: i64 = 512;

#[derive(Debug, Clone)]
struct Edge {
    source: String,
    destination: pb::Entitlement,
    shallow: bool,
    principal_types: Vec<String>,
}

/// One holder of an edge's source entitlement.
struct Holder {
    principal: pb::Resource,
    direct: bool,
}

impl C1zWriter {
    /// Expands every expandable grant of this sync, repeating until nothing changes (at most
    /// `max_depth` rounds: a chain of expansions settles in its depth); returns how many grants
    /// it created.
    pub fn expand_grants(&mut self, max_depth: usize) -> Result<usize> {
        self.build_indexes_left_out_in_memory()?;
        let edges = self.edges()?;
        // Holders of a source change only when some edge grants that source: without such a
        // chain, one round is all there is to do.
        let sources: std::collections::HashSet<&str> =
            edges.iter().map(|e| e.source.as_str()).collect();
        let chained = edges
            .iter()
            .any(|e| sources.contains(e.destination.id.as_str()));
        let rounds = if chained { max_depth } else { 1 };
        let mut created = 0;
        for _ in 0..rounds {
            let mut changed = false;
            for edge in &edges {
                let mut after = 0;
                loop {
                    let (holders, last) = self.holders(edge, after)?;
                    let Some(last) = last else { break };
                    after = last;
                    let (made, touched) = self.grant_to(edge, &holders)?;
                    created += made;
                    changed |= touched;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(created)
    }

    /// Source → destination edges. As in Baton, a source entitlement must be on the expandable
    /// grant's own principal (e.g. "member of group G" for a grant to group G); others are
    /// ignored.
    fn edges(&self) -> Result<Vec<Edge>> {
        let conn = self.connection();
        let mut stmt = conn.prepare(
            "select entitlement_id, principal_resource_type_id, principal_resource_id, expansion
             from v1_grants where sync_id = ?1 and needs_expansion = 1 order by id",
        )?;
        let rows: Vec<(String, String, String, Vec<u8>)> = stmt
            .query_map(params![self.sync_id()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut on_resource = conn.prepare(
            "select resource_type_id, resource_id from v1_entitlements
             where external_id = ?1 and sync_id = ?2",
        )?;
        let mut edges = Vec::new();
        for (destination, ptype, pid, expansion) in rows {
            let expandable = pb::GrantExpandable::decode(expansion.as_slice())
                .with_context(|| format!("decoding the expansion of a grant on {destination}"))?;
            let Some(destination_entitlement) = self.entitlement(&destination)? else {
                continue;
            };
            for source in expandable
                .entitlement_ids
                .iter()
                .filter(|s| !s.trim().is_empty())
            {
                let owner: Option<(String, String)> = on_resource
                    .query_row(params![source, self.sync_id()], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()?;
                if owner.as_ref() != Some(&(ptype.clone(), pid.clone())) {
                    continue;
                }
                edges.push(Edge {
                    source: source.clone(),
                    destination: destination_entitlement.clone(),
                    shallow: expandable.shallow,
                    principal_types: expandable.resource_type_ids.clone(),
                });
            }
        }
        Ok(edges)
    }

    /// The next batch of `edge`'s source holders after row `after`, and the last row read
    /// (`None` when there are no more rows).
    fn holders(&self, edge: &Edge, after: i64) -> Result<(Vec<Holder>, Option<i64>)> {
        let mut stmt = self.connection().prepare_cached(
            "select id, data from v1_grants where entitlement_id = ?1 and sync_id = ?2 and id > ?3
             order by id limit ?4",
        )?;
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map(params![edge.source, self.sync_id(), after, BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let last = rows.last().map(|(id, _)| *id);
        let mut holders = Vec::new();
        for (id, data) in rows {
            let grant = pb::Grant::decode(data.as_slice())
                .with_context(|| format!("decoding grant row {id}"))?;
            let Some(principal) = grant.principal else {
                continue;
            };
            let ptype = principal
                .id
                .as_ref()
                .map_or("", |i| i.resource_type.as_str());
            if !edge.principal_types.is_empty() && !edge.principal_types.iter().any(|t| t == ptype)
            {
                continue;
            }
            let direct = is_direct(grant.sources.as_ref(), &edge.source);
            if edge.shallow && !direct {
                continue;
            }
            holders.push(Holder { principal, direct });
        }
        Ok((holders, last))
    }

    /// Grants `edge`'s destination to `holders`: new derived grants, or sources merged into
    /// existing ones. Returns how many grants it created and whether anything changed.
    fn grant_to(&mut self, edge: &Edge, holders: &[Holder]) -> Result<(usize, bool)> {
        let destination = &edge.destination.id;
        let mut updates = Vec::new();
        let mut created = 0;
        for holder in holders {
            let Some(pid) = &holder.principal.id else {
                continue;
            };
            let id = format!("{destination}:{}:{}", pid.resource_type, pid.resource);
            match self.grant(&id)? {
                Some(mut existing) => {
                    let sources = &mut existing
                        .sources
                        .get_or_insert_with(Default::default)
                        .sources;
                    let before = sources.clone();
                    if sources.is_empty() {
                        // Mark the existing grant as held directly as well.
                        sources.insert(destination.clone(), source(true));
                    }
                    let entry = sources
                        .entry(edge.source.clone())
                        .or_insert(source(holder.direct));
                    entry.is_direct |= holder.direct;
                    if *sources != before {
                        updates.push(existing);
                    }
                }
                None => {
                    created += 1;
                    updates.push(pb::Grant {
                        entitlement: Some(edge.destination.clone()),
                        principal: Some(holder.principal.clone()),
                        id,
                        annotations: vec![annotations::pack(&pb::GrantImmutable::default())],
                        sources: Some(pb::GrantSources {
                            sources: [(edge.source.clone(), source(holder.direct))].into(),
                        }),
                    });
                }
            }
        }
        let changed = !updates.is_empty();
        if changed {
            let mut batch = self.batch()?;
            for grant in &updates {
                batch.put_grant(grant)?;
            }
            batch.commit()?;
        }
        Ok((created, changed))
    }
}

fn source(is_direct: bool) -> pb::grant_sources::GrantSource {
    pb::grant_sources::GrantSource { is_direct }
}

/// A grant is direct on `entitlement` when expansion never touched it or recorded it as direct.
fn is_direct(sources: Option<&pb::GrantSources>, entitlement: &str) -> bool {
    match sources {
        None => true,
        Some(s) if s.sources.is_empty() => true,
        Some(s) => s.sources.get(entitlement).is_some_and(|g| g.is_direct),
    }
}
