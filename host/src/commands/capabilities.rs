//! The JSON a Baton connector prints for its `capabilities` and `config` subcommands:
//!
//! * `capabilities`: the connector's `ConnectorCapabilities` packed in an `Any`, as protojson
//!   (camelCase names, enum names, `@type`), indented by two spaces;
//! * `config`: the configuration schema (`c1.config.v1.Configuration`) ConductorOne builds a
//!   cloud-hosted connector's setup form from, as protojson: the standard fields ConductorOne
//!   operates (`isOps`: log level, OpenTelemetry, session store) and the connector's own
//!   (the Segment API token, a secret, and the base URL). Fields only the command line uses
//!   (client id, file, provisioning flags…) are not in it, as in baton-sdk.

use baton::pb;
use prost::Name as _;
use prost_types::Any;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// JSON whose objects keep their keys in the order they were put in: protojson writes a
/// message's fields in field-number order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Obj(Vec<(String, Json)>),
    Arr(Vec<Json>),
    Str(String),
    Bool(bool),
}

impl Json {
    fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Adds `key` (objects only).
    fn put(mut self, key: &str, value: impl Into<Json>) -> Json {
        if let Json::Obj(fields) = &mut self {
            fields.push((key.to_string(), value.into()));
        }
        self
    }

    /// Adds `key` when `cond` holds (protojson leaves default values out).
    fn put_if(self, cond: bool, key: &str, value: impl Into<Json>) -> Json {
        if cond { self.put(key, value) } else { self }
    }

    /// Adds `key` with each of `items` as JSON, when there is any (protojson leaves empty
    /// lists out).
    fn put_list<T>(self, key: &str, items: &[T], json: impl Fn(&T) -> Json) -> Json {
        let list: Vec<Json> = items.iter().map(json).collect();
        self.put_if(!list.is_empty(), key, list)
    }

    /// Adds `key` when there is a value.
    fn put_some(self, key: &str, value: Option<impl Into<Json>>) -> Json {
        match value {
            Some(value) => self.put(key, value),
            None => self,
        }
    }

    /// As a `serde_json::Value` (key order lost), for reading it back.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Two-space indented, as baton-sdk prints it.
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<Vec<Json>> for Json {
    fn from(items: Vec<Json>) -> Json {
        Json::Arr(items)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Obj(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Str(v) => s.serialize_str(v),
            Json::Bool(b) => s.serialize_bool(*b),
        }
    }
}

/// protojson of an annotation: the message's fields after `@type`. Baton's resource-type
/// annotations carry no fields; any other is shown with its bytes.
fn any_json(a: &Any) -> Json {
    let fieldless = [
        pb::SkipEntitlementsAndGrants::type_url(),
        pb::SkipEntitlements::type_url(),
        pb::SkipGrants::type_url(),
    ];
    let bytes = || {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&a.value)
    };
    Json::obj().put("@type", a.type_url.clone()).put_if(
        !fieldless.contains(&a.type_url) && !a.value.is_empty(),
        "value",
        bytes(),
    )
}

fn capability_name(c: &i32) -> Json {
    pb::Capability::try_from(*c)
        .map(|c| c.as_str_name().to_string())
        .unwrap_or_else(|_| c.to_string())
        .into()
}

fn credential_option(c: &i32) -> Json {
    pb::CapabilityDetailCredentialOption::try_from(*c)
        .map(|c| c.as_str_name().to_string())
        .unwrap_or_else(|_| c.to_string())
        .into()
}

fn resource_type_json(t: &pb::ResourceType) -> Json {
    let traits: Vec<Json> = t
        .traits
        .iter()
        .map(|x| {
            pb::resource_type::Trait::try_from(*x)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_else(|_| x.to_string())
                .into()
        })
        .collect();
    Json::obj()
        .put_if(!t.id.is_empty(), "id", t.id.clone())
        .put_if(
            !t.display_name.is_empty(),
            "displayName",
            t.display_name.clone(),
        )
        .put_if(!traits.is_empty(), "traits", traits)
        .put_if(
            !t.annotations.is_empty(),
            "annotations",
            t.annotations.iter().map(any_json).collect::<Vec<_>>(),
        )
        .put_if(
            !t.description.is_empty(),
            "description",
            t.description.clone(),
        )
        .put_if(t.sourced_externally, "sourcedExternally", true)
}

/// `capabilities`: an `Any` of the connector's `ConnectorCapabilities`, as protojson.
pub fn capabilities(c: &pb::ConnectorCapabilities) -> Json {
    let rtcs: Vec<Json> = c
        .resource_type_capabilities
        .iter()
        .map(|r| {
            Json::obj()
                .put_if(
                    r.resource_type.is_some(),
                    "resourceType",
                    r.resource_type
                        .as_ref()
                        .map(resource_type_json)
                        .unwrap_or(Json::obj()),
                )
                .put_list("capabilities", &r.capabilities, capability_name)
                .put_if(r.opt_in_required, "optInRequired", true)
                .put_if(
                    r.skip_sync_anomaly_detection,
                    "skipSyncAnomalyDetection",
                    true,
                )
                .put_if(r.deprecated, "deprecated", true)
        })
        .collect();
    let details = |supported: &[i32], preferred: i32| {
        Json::obj()
            .put_list("supportedCredentialOptions", supported, credential_option)
            .put_if(
                preferred != 0,
                "preferredCredentialOption",
                credential_option(&preferred),
            )
    };
    let credential_details = c.credential_details.as_ref().map(|d| {
        // The two capabilities' messages are alike, but of two types.
        let provisioning = d.capability_account_provisioning.as_ref().map(|x| {
            details(
                &x.supported_credential_options,
                x.preferred_credential_option,
            )
        });
        let rotation = d.capability_credential_rotation.as_ref().map(|x| {
            details(
                &x.supported_credential_options,
                x.preferred_credential_option,
            )
        });
        Json::obj()
            .put_some("capabilityAccountProvisioning", provisioning)
            .put_some("capabilityCredentialRotation", rotation)
    });
    Json::obj()
        .put("@type", pb::ConnectorCapabilities::type_url())
        .put_if(!rtcs.is_empty(), "resourceTypeCapabilities", rtcs)
        .put_list(
            "connectorCapabilities",
            &c.connector_capabilities,
            capability_name,
        )
        .put_if(
            credential_details.is_some(),
            "credentialDetails",
            credential_details.unwrap_or(Json::obj()),
        )
}

/// A field of the schema: protojson of `c1.config.v1.Field`.
struct SchemaField {
    name: &'static str,
    display_name: &'static str,
    description: &'static str,
    required: bool,
    ops: bool,
    secret: bool,
    hidden: bool,
    kind: Kind,
}

enum Kind {
    String(Option<String>),
    Int(Option<i64>),
    Bool,
}

impl SchemaField {
    fn json(&self) -> Json {
        let (key, value) = match &self.kind {
            Kind::String(d) => (
                "stringField",
                Json::obj().put_if(
                    d.as_deref().is_some_and(|d| !d.is_empty()),
                    "defaultValue",
                    d.clone().unwrap_or_default(),
                ),
            ),
            // protojson writes 64-bit integers as strings.
            Kind::Int(d) => (
                "intField",
                Json::obj().put_if(
                    d.is_some_and(|d| d != 0),
                    "defaultValue",
                    d.unwrap_or_default().to_string(),
                ),
            ),
            Kind::Bool => ("boolField", Json::obj()),
        };
        Json::obj()
            .put("name", self.name)
            .put_if(
                !self.display_name.is_empty(),
                "displayName",
                self.display_name,
            )
            .put_if(
                !self.description.is_empty(),
                "description",
                self.description,
            )
            .put_if(self.required, "isRequired", true)
            .put_if(self.ops, "isOps", true)
            .put_if(self.secret, "isSecret", true)
            .put_if(self.hidden, "isHidden", true)
            .put(key, value)
    }
}

/// `config`: the configuration schema, as protojson of `c1.config.v1.Configuration`.
pub fn config_schema(default_base_url: &str, session_store_default: u64) -> Json {
    let ops = |name, description, hidden, kind| SchemaField {
        name,
        display_name: "",
        description,
        required: false,
        ops: true,
        secret: false,
        hidden,
        kind,
    };
    let fields = [
        // baton-sdk's standard fields that ConductorOne operates, in defaults.go's order.
        ops(
            "log-level",
            "The log level: debug, info, warn, error",
            false,
            Kind::String(Some("info".into())),
        ),
        ops(
            "log-level-debug-expires-at",
            "The timestamp indicating when debug-level logging should expire",
            false,
            Kind::String(None),
        ),
        ops(
            "session-store-maximum-size",
            "The maximum size of the local in-memory session store cache in bytes.",
            true,
            Kind::Int(Some(
                i64::try_from(session_store_default).unwrap_or(i64::MAX),
            )),
        ),
        ops(
            "otel-collector-endpoint",
            "The endpoint of the OpenTelemetry collector to send observability data to (used for both tracing and logging if specific endpoints are not provided)",
            false,
            Kind::String(None),
        ),
        ops(
            "otel-collector-endpoint-tls-cert-path",
            "Path to a file containing a PEM-encoded certificate to use as a CA for TLS connections to the OpenTelemetry collector",
            true,
            Kind::String(None),
        ),
        ops(
            "otel-collector-endpoint-tls-cert",
            "A PEM-encoded certificate to use as a CA for TLS connections to the OpenTelemetry collector",
            true,
            Kind::String(None),
        ),
        ops(
            "otel-collector-endpoint-tls-insecure",
            "Allow insecure connections to the OpenTelemetry collector",
            true,
            Kind::Bool,
        ),
        ops(
            "otel-tracing-disabled",
            "Disable OpenTelemetry tracing",
            true,
            Kind::Bool,
        ),
        ops(
            "otel-logging-disabled",
            "Disable OpenTelemetry logging",
            true,
            Kind::Bool,
        ),
        // The Segment connector's own.
        SchemaField {
            name: "token",
            display_name: "Access Token",
            description: "Personal Access Token (PAT) for Segment API authentication",
            required: true,
            ops: false,
            secret: true,
            hidden: false,
            kind: Kind::String(None),
        },
        SchemaField {
            name: "base-url",
            display_name: "Base URL",
            description: "The Segment Public API base URL; https://eu1.api.segmentapis.com for EU workspaces",
            required: false,
            ops: false,
            secret: false,
            hidden: false,
            kind: Kind::String(Some(default_base_url.to_string())),
        },
    ];
    Json::obj()
        .put(
            "fields",
            fields.iter().map(SchemaField::json).collect::<Vec<_>>(),
        )
        .put("displayName", "Segment")
        .put("helpUrl", "/docs/baton/segment")
        .put("iconUrl", "/static/app-icons/segment.svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_protojson_of_an_any() {
        let caps = pb::ConnectorCapabilities {
            resource_type_capabilities: vec![pb::ResourceTypeCapability {
                resource_type: Some(pb::ResourceType {
                    id: "invite".into(),
                    display_name: "Invite".into(),
                    traits: vec![pb::resource_type::Trait::User as i32],
                    annotations: vec![baton::annotations::pack(&pb::SkipEntitlementsAndGrants {})],
                    description: "A pending workspace invitation".into(),
                    sourced_externally: false,
                }),
                capabilities: vec![pb::Capability::Sync as i32],
                skip_sync_anomaly_detection: true,
                ..Default::default()
            }],
            connector_capabilities: vec![pb::Capability::AccountProvisioning as i32],
            credential_details: Some(pb::CredentialDetails {
                capability_account_provisioning: Some(pb::CredentialDetailsAccountProvisioning {
                    supported_credential_options: vec![1],
                    preferred_credential_option: 1,
                }),
                capability_credential_rotation: None,
            }),
        };
        let json = capabilities(&caps);
        // Fields in field-number order, as protojson writes them.
        let text = json.pretty();
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("\"@type\"") < at("resourceTypeCapabilities"));
        assert!(at("resourceTypeCapabilities") < at("connectorCapabilities"));
        assert!(at("connectorCapabilities") < at("credentialDetails"));
        let v = json.to_value();
        assert_eq!(
            v["@type"],
            "type.googleapis.com/c1.connector.v2.ConnectorCapabilities"
        );
        let rt = &v["resourceTypeCapabilities"][0];
        assert_eq!(rt["resourceType"]["traits"][0], "TRAIT_USER");
        assert_eq!(
            rt["resourceType"]["annotations"][0]["@type"],
            "type.googleapis.com/c1.connector.v2.SkipEntitlementsAndGrants"
        );
        assert_eq!(rt["capabilities"][0], "CAPABILITY_SYNC");
        assert_eq!(rt["skipSyncAnomalyDetection"], true);
        assert!(rt.get("optInRequired").is_none(), "false is left out");
        assert_eq!(
            v["connectorCapabilities"][0],
            "CAPABILITY_ACCOUNT_PROVISIONING"
        );
        assert_eq!(
            v["credentialDetails"]["capabilityAccountProvisioning"]["preferredCredentialOption"],
            "CAPABILITY_DETAIL_CREDENTIAL_OPTION_NO_PASSWORD"
        );
    }
}
