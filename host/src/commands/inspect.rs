//! `resource-types`, `resources`, `entitlements`, `grants`, `stats`: reading a `.c1z` (the
//! latest finished full sync in it), as tables or JSON.

use crate::cli::OutputFormat;
use anyhow::Context;
use baton::annotations::unpack;
use baton::{C1zReader, pb};
use prost_types::value::Kind;
use serde_json::{Map, Value, json};
use std::path::Path;

pub struct Inspector {
    reader: C1zReader,
    sync_id: String,
}

impl Inspector {
    pub fn open(path: &Path) -> anyhow::Result<Inspector> {
        let reader =
            C1zReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let sync_id = reader
            .latest_sync()
            .with_context(|| format!("{} holds no sync", path.display()))?
            .sync_id;
        Ok(Inspector { reader, sync_id })
    }

    pub fn resource_types(&self, format: OutputFormat) -> anyhow::Result<String> {
        let types = self.reader.resource_types(&self.sync_id)?;
        let headers = ["ID", "Display Name", "Traits"];
        Ok(
            format.listing("resourceTypes", &types, resource_type_json, &headers, |t| {
                vec![
                    t.id.clone(),
                    t.display_name.clone(),
                    trait_names(&t.traits).join(", "),
                ]
            }),
        )
    }

    pub fn resources(
        &self,
        format: OutputFormat,
        resource_type: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut resources = self.reader.resources(&self.sync_id)?;
        resources.retain(|r| type_is(r.id.as_ref(), resource_type));
        let headers = ["ID", "Display Name", "Resource Type", "Parent Resource"];
        Ok(
            format.listing("resources", &resources, resource_json, &headers, |r| {
                let id = r.id.clone().unwrap_or_default();
                let parent = r.parent_resource_id.as_ref().map(id_text);
                vec![
                    id.resource,
                    r.display_name.clone(),
                    id.resource_type,
                    parent.unwrap_or_default(),
                ]
            }),
        )
    }

    pub fn entitlements(
        &self,
        format: OutputFormat,
        resource_type: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut items = self.reader.entitlements(&self.sync_id)?;
        items.retain(|e| {
            type_is(
                e.resource.as_ref().and_then(|r| r.id.as_ref()),
                resource_type,
            )
        });
        let headers = ["ID", "Display Name", "Resource Type", "Resource", "Purpose"];
        Ok(
            format.listing("entitlements", &items, entitlement_json, &headers, |e| {
                let id = e.resource.as_ref().and_then(|r| r.id.clone());
                let id = id.unwrap_or_default();
                vec![
                    e.id.clone(),
                    e.display_name.clone(),
                    id.resource_type,
                    id.resource,
                    purpose_name(e.purpose).into(),
                ]
            }),
        )
    }

    pub fn grants(
        &self,
        format: OutputFormat,
        resource_type: Option<&str>,
        resource: Option<&str>,
        entitlement: Option<&str>,
    ) -> anyhow::Result<String> {
        let grants: Vec<baton::c1z::StoredGrant> = self
            .reader
            .grants(&self.sync_id)?
            .into_iter()
            .filter(|g| {
                let on = g
                    .grant
                    .entitlement
                    .as_ref()
                    .and_then(|e| e.resource.as_ref())
                    .and_then(|r| r.id.as_ref());
                type_is(on, resource_type)
                    && resource.is_none_or(|want| on.is_some_and(|id| id.resource == want))
                    && entitlement.is_none_or(|want| {
                        g.grant.entitlement.as_ref().is_some_and(|e| e.id == want)
                    })
            })
            .collect();
        let headers = [
            "ID",
            "Resource Type",
            "Resource",
            "Entitlement",
            "Principal",
        ];
        Ok(
            format.listing("grants", &grants, grant_json, &headers, |g| {
                let e = g.grant.entitlement.clone().unwrap_or_default();
                let on = e.resource.and_then(|r| r.id).unwrap_or_default();
                let principal = g.grant.principal.as_ref().and_then(|p| p.id.as_ref());
                vec![
                    g.grant.id.clone(),
                    on.resource_type,
                    on.resource,
                    e.id,
                    principal.map(id_text).unwrap_or_default(),
                ]
            }),
        )
    }

    pub fn stats(&self, format: OutputFormat) -> anyhow::Result<String> {
        let resources = self.reader.resources(&self.sync_id)?;
        let types = self.reader.resource_types(&self.sync_id)?;
        let entitlements = self.reader.entitlements(&self.sync_id)?.len();
        let grants = self.reader.grants(&self.sync_id)?.len();
        let counts: Vec<(String, usize)> = types
            .iter()
            .map(|t| (t.id.clone(), resource_count(&resources, &t.id)))
            .collect();
        Ok(match format {
            OutputFormat::Json => {
                let by_type: Map<String, Value> =
                    counts.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
                pretty(json!({
                    "syncId": self.sync_id,
                    "resourceTypes": types.len(),
                    "resources": resources.len(),
                    "resourcesByResourceType": by_type,
                    "entitlements": entitlements,
                    "grants": grants,
                }))
            }
            OutputFormat::Console => {
                let mut rows: Vec<Vec<String>> =
                    vec![vec!["resource_types".into(), types.len().to_string()]];
                rows.extend(counts.iter().map(|(t, n)| vec![t.clone(), n.to_string()]));
                rows.push(vec!["entitlements".into(), entitlements.to_string()]);
                rows.push(vec!["grants".into(), grants.to_string()]);
                format!("sync {}\n{}", self.sync_id, table(&["Type", "Count"], rows))
            }
        })
    }
}

fn resource_count(resources: &[pb::Resource], type_id: &str) -> usize {
    resources
        .iter()
        .filter(|r| r.id.as_ref().is_some_and(|i| i.resource_type == type_id))
        .count()
}

fn type_is(id: Option<&pb::ResourceId>, want: Option<&str>) -> bool {
    want.is_none_or(|w| id.is_some_and(|i| i.resource_type == w))
}

fn id_text(id: &pb::ResourceId) -> String {
    format!("{}:{}", id.resource_type, id.resource)
}

impl OutputFormat {
    /// `items` as JSON (an object holding them under `key`) or as a table, a row each.
    fn listing<T>(
        self,
        key: &str,
        items: &[T],
        json: fn(&T) -> Value,
        headers: &[&str],
        row: impl Fn(&T) -> Vec<String>,
    ) -> String {
        match self {
            OutputFormat::Json => {
                let items = Value::Array(items.iter().map(json).collect());
                pretty(Value::Object(Map::from_iter([(key.to_string(), items)])))
            }
            OutputFormat::Console => table(headers, items.iter().map(row).collect()),
        }
    }
}

fn pretty(v: Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// A plain text table with padded columns.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn trait_names(traits: &[i32]) -> Vec<String> {
    traits
        .iter()
        .map(|t| {
            pb::resource_type::Trait::try_from(*t)
                .map(|t| t.as_str_name().trim_start_matches("TRAIT_").to_string())
                .unwrap_or_else(|_| t.to_string())
        })
        .collect()
}

fn purpose_name(p: i32) -> &'static str {
    match pb::entitlement::PurposeValue::try_from(p) {
        Ok(pb::entitlement::PurposeValue::Assignment) => "assignment",
        Ok(pb::entitlement::PurposeValue::Permission) => "permission",
        Ok(pb::entitlement::PurposeValue::Ownership) => "ownership",
        _ => "unspecified",
    }
}

fn struct_json(s: &prost_types::Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &prost_types::Value) -> Value {
    match &v.kind {
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
        Some(Kind::NullValue(_)) | None => Value::Null,
    }
}

fn rid_json(id: &pb::ResourceId) -> Value {
    json!({ "resourceType": id.resource_type, "resource": id.resource })
}

fn resource_type_json(t: &pb::ResourceType) -> Value {
    json!({ "id": t.id, "displayName": t.display_name, "description": t.description, "traits": trait_names(&t.traits) })
}

fn resource_json(r: &pb::Resource) -> Value {
    let mut out = Map::new();
    out.insert(
        "id".into(),
        r.id.as_ref().map(rid_json).unwrap_or(Value::Null),
    );
    if let Some(p) = &r.parent_resource_id {
        out.insert("parentResourceId".into(), rid_json(p));
    }
    out.insert("displayName".into(), json!(r.display_name));
    if !r.description.is_empty() {
        out.insert("description".into(), json!(r.description));
    }
    if let Some(p) = &r.profile {
        out.insert("profile".into(), struct_json(p));
    }
    if let Some(s) = &r.status {
        let name = pb::status::Status::try_from(s.status)
            .map(|s| s.as_str_name())
            .unwrap_or("RESOURCE_STATUS_UNSPECIFIED");
        out.insert("status".into(), json!(name));
    }
    let mut traits = vec![];
    if let Some(u) = unpack::<pb::UserTrait>(&r.annotations) {
        traits.push(json!({ "user": { "emails": u.emails.iter().map(|e| json!({"address": e.address, "isPrimary": e.is_primary})).collect::<Vec<_>>(), "login": u.login } }));
    }
    if unpack::<pb::GroupTrait>(&r.annotations).is_some() {
        traits.push(json!("group"));
    }
    if unpack::<pb::RoleTrait>(&r.annotations).is_some() {
        traits.push(json!("role"));
    }
    if unpack::<pb::AppTrait>(&r.annotations).is_some() {
        traits.push(json!("app"));
    }
    if !traits.is_empty() {
        out.insert("traits".into(), Value::Array(traits));
    }
    Value::Object(out)
}

fn entitlement_json(e: &pb::Entitlement) -> Value {
    json!({
        "id": e.id,
        "resource": e.resource.as_ref().and_then(|r| r.id.as_ref()).map(rid_json),
        "displayName": e.display_name,
        "description": e.description,
        "slug": e.slug,
        "purpose": purpose_name(e.purpose),
        "grantableTo": e.grantable_to.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
    })
}

fn grant_json(g: &baton::c1z::StoredGrant) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(g.grant.id));
    out.insert(
        "entitlement".into(),
        json!(g.grant.entitlement.as_ref().map(|e| e.id.clone())),
    );
    out.insert(
        "principal".into(),
        g.grant
            .principal
            .as_ref()
            .and_then(|p| p.id.as_ref())
            .map(rid_json)
            .unwrap_or(Value::Null),
    );
    if let Some(s) = &g.grant.sources {
        let sources: Map<String, Value> = s
            .sources
            .iter()
            .map(|(k, v)| (k.clone(), json!({"isDirect": v.is_direct})))
            .collect();
        out.insert("sources".into(), Value::Object(sources));
    }
    if let Some(x) = &g.expansion {
        out.insert(
            "expandable".into(),
            json!({ "entitlementIds": x.entitlement_ids, "shallow": x.shallow, "resourceTypeIds": x.resource_type_ids }),
        );
    }
    if unpack::<pb::GrantImmutable>(&g.grant.annotations).is_some() {
        out.insert("immutable".into(), json!(true));
    }
    Value::Object(out)
}
