//! Helpers for annotations: `google.protobuf.Any` values holding `c1.connector.v2` messages.
//!
//! Type URLs are `type.googleapis.com/c1.connector.v2.<Name>`. Matching looks only at the
//! part after the last `/`, so other URL prefixes are accepted on input.

use prost::{Message, Name};
use prost_types::Any;

/// Encodes `msg` as an `Any` with type URL `type.googleapis.com/<full name>`.
pub fn pack<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

/// True if `any` holds a message of type `M` (matched on the type URL).
pub fn is<M: Name>(any: &Any) -> bool {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    name == M::full_name()
}

/// Decodes the first annotation of type `M` (an entry of that type that fails to decode is
/// skipped).
pub fn unpack<M: Message + Name + Default>(annotations: &[Any]) -> Option<M> {
    annotations
        .iter()
        .filter(|a| is::<M>(a))
        .find_map(|a| M::decode(a.value.as_slice()).ok())
}

/// True if any annotation has type `M`.
pub fn contains<M: Name>(annotations: &[Any]) -> bool {
    annotations.iter().any(is::<M>)
}

/// Removes **every** annotation of type `M` and returns the first one that decodes.
pub fn remove<M: Message + Name + Default>(annotations: &mut Vec<Any>) -> Option<M> {
    let mut first = None;
    annotations.retain(|a| {
        if !is::<M>(a) {
            return true;
        }
        if first.is_none() {
            first = M::decode(a.value.as_slice()).ok();
        }
        false
    });
    first
}

/// Replaces the first annotation of type `M` (and drops further ones), or appends one.
pub fn update<M: Message + Name>(annotations: &mut Vec<Any>, msg: &M) {
    let packed = pack(msg);
    match annotations.iter().position(is::<M>) {
        Some(i) => {
            annotations[i] = packed;
            let mut seen = 0usize;
            annotations.retain(|a| {
                if is::<M>(a) {
                    seen += 1;
                    seen == 1
                } else {
                    true
                }
            });
        }
        None => annotations.push(packed),
    }
}

/// Appends `msg` as a new annotation.
pub fn append<M: Message + Name>(annotations: &mut Vec<Any>, msg: &M) {
    annotations.push(pack(msg));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use prost_types::{Struct, Value, value::Kind};
    use std::collections::BTreeMap;

    #[test]
    fn type_urls_use_googleapis_domain() {
        assert_eq!(
            pb::UserTrait::type_url(),
            "type.googleapis.com/c1.connector.v2.UserTrait"
        );
        let any = pack(&pb::GrantExpandable {
            entitlement_ids: vec!["group:a:member".into()],
            ..Default::default()
        });
        assert_eq!(
            any.type_url,
            "type.googleapis.com/c1.connector.v2.GrantExpandable"
        );
        assert_eq!(
            pack(&pb::SkipSyncAnomalyDetection {}).type_url,
            "type.googleapis.com/c1.connector.v2.SkipSyncAnomalyDetection"
        );
    }

    #[test]
    fn pack_unpack_contains_remove() {
        let mut anns = vec![
            pack(&pb::ChildResourceType {
                resource_type_id: "group".into(),
            }),
            pack(&pb::GrantExpandable {
                entitlement_ids: vec!["x".into()],
                shallow: true,
                resource_type_ids: vec![],
            }),
            pack(&pb::ChildResourceType {
                resource_type_id: "role".into(),
            }),
        ];
        assert!(contains::<pb::ChildResourceType>(&anns));
        assert!(!contains::<pb::UserTrait>(&anns));
        assert_eq!(
            unpack::<pb::ChildResourceType>(&anns)
                .unwrap()
                .resource_type_id,
            "group"
        );
        assert!(unpack::<pb::UserTrait>(&anns).is_none());

        let ge = remove::<pb::GrantExpandable>(&mut anns).unwrap();
        assert!(ge.shallow);
        assert_eq!(anns.len(), 2);
        assert!(!contains::<pb::GrantExpandable>(&anns));
        assert!(remove::<pb::GrantExpandable>(&mut anns).is_none());

        let first = remove::<pb::ChildResourceType>(&mut anns).unwrap();
        assert_eq!(first.resource_type_id, "group");
        assert!(anns.is_empty());
    }

    #[test]
    fn update_replaces_or_appends() {
        let mut anns = vec![];
        update(
            &mut anns,
            &pb::ExternalLink {
                url: "https://a".into(),
            },
        );
        update(&mut anns, &pb::RawId { id: "1".into() });
        update(
            &mut anns,
            &pb::ExternalLink {
                url: "https://b".into(),
            },
        );
        assert_eq!(anns.len(), 2);
        assert_eq!(unpack::<pb::ExternalLink>(&anns).unwrap().url, "https://b");
    }

    #[test]
    fn other_url_prefix_matches() {
        let any = Any {
            type_url: "example.com/x/c1.connector.v2.RawId".into(),
            value: pb::RawId { id: "7".into() }.encode_to_vec(),
        };
        assert_eq!(unpack::<pb::RawId>(&[any]).unwrap().id, "7");
    }

    fn sample_struct(keys: &[&str]) -> Struct {
        let mut fields = BTreeMap::new();
        for k in keys {
            fields.insert(
                (*k).to_string(),
                Value {
                    kind: Some(Kind::StringValue(format!("v-{k}"))),
                },
            );
        }
        Struct { fields }
    }

    #[test]
    fn encoding_is_deterministic() {
        let make = || pb::Grant {
            id: "g".into(),
            sources: Some(pb::GrantSources {
                sources: [("b", true), ("a", false), ("c", true)]
                    .into_iter()
                    .map(|(k, d)| {
                        (
                            k.to_string(),
                            pb::grant_sources::GrantSource { is_direct: d },
                        )
                    })
                    .collect(),
            }),
            principal: Some(pb::Resource {
                profile: Some(sample_struct(&["z", "a", "m"])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = make().encode_to_vec();
        let b = make().encode_to_vec();
        assert_eq!(a, b);
        // Decoding and re-encoding gives the same bytes.
        let again = pb::Grant::decode(a.as_slice()).unwrap().encode_to_vec();
        assert_eq!(a, again);
    }

    #[test]
    fn struct_encoding_independent_of_insertion_order() {
        let s1 = sample_struct(&["zeta", "alpha", "mid", "beta"]);
        let s2 = sample_struct(&["beta", "mid", "alpha", "zeta"]);
        assert_eq!(s1.encode_to_vec(), s2.encode_to_vec());
        // Keys appear in sorted order in the encoding.
        let bytes = s1.encode_to_vec();
        let pos = |needle: &str| {
            bytes
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap()
        };
        assert!(pos("alpha") < pos("beta"));
        assert!(pos("beta") < pos("mid"));
        assert!(pos("mid") < pos("zeta"));
    }
}
