//! Proto merge on proto JSON, as Kuma merges a `Patch` value into a
//! resource: set fields replace, nested messages merge field by field,
//! repeated fields append, map entries replace by key, and setting one
//! member of a oneof clears the others. Well-known types (durations,
//! wrappers, structs) are replaced whole, and an `Any` merges only into an
//! `Any` of the same type.

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::proto_json;

/// `patch` merged into `target`, both proto JSON of `desc`.
pub(super) fn message(target: &mut Value, patch: Value, desc: &MessageDescriptor) {
    let (Some(t), Value::Object(p)) = (target.as_object_mut(), &patch) else {
        *target = patch;
        return;
    };
    if desc.full_name() == "google.protobuf.Any" {
        any(t, p.clone());
        return;
    }
    if desc.full_name().starts_with("google.protobuf.") {
        *target = patch;
        return;
    }
    let Value::Object(p) = patch else { return };
    for (key, value) in p {
        let Some(field) = desc
            .get_field_by_json_name(&key)
            .or_else(|| desc.get_field_by_name(&key))
        else {
            t.insert(key, value);
            continue;
        };
        if let Some(oneof) = field.containing_oneof() {
            for other in oneof.fields().filter(|f| f.number() != field.number()) {
                t.remove(other.json_name());
            }
        }
        match t.get_mut(&key) {
            None => {
                t.insert(key, value);
            }
            Some(existing) => {
                if field.is_map() {
                    if let (Some(e), Value::Object(v)) = (existing.as_object_mut(), value) {
                        e.extend(v);
                    }
                } else if field.is_list() {
                    if let (Some(e), Value::Array(v)) = (existing.as_array_mut(), value) {
                        e.extend(v);
                    }
                } else if let Kind::Message(inner) = field.kind() {
                    message(existing, value, &inner);
                } else {
                    *existing = value;
                }
            }
        }
    }
}

/// An `Any` merged into an `Any`: of the same type, field by field; of
/// another type, replaced.
fn any(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    let type_url = patch
        .get("@type")
        .and_then(Value::as_str)
        .map(str::to_string);
    let same =
        type_url.is_some() && target.get("@type").and_then(Value::as_str) == type_url.as_deref();
    let inner = type_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .and_then(|name| proto_json::message(name).ok());
    match (same, inner) {
        (true, Some(inner)) => {
            let mut t = Value::Object(std::mem::take(target));
            message(&mut t, Value::Object(patch), &inner);
            if let Value::Object(t) = t {
                *target = t;
            }
        }
        _ => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> MessageDescriptor {
        proto_json::message("envoy.config.cluster.v3.Cluster").unwrap()
    }

    #[test]
    fn scalars_replace_messages_merge_lists_append() {
        let mut c = json!({
            "name": "backend",
            "connectTimeout": "5s",
            "circuitBreakers": {"thresholds": [{"maxConnections": 10}]},
            "commonLbConfig": {"healthyPanicThreshold": {"value": 50}}
        });
        message(
            &mut c,
            json!({
                "connectTimeout": "1s",
                "circuitBreakers": {"thresholds": [{"maxRequests": 3}]},
                "commonLbConfig": {"updateMergeWindow": "2s"}
            }),
            &cluster(),
        );
        assert_eq!(
            c,
            json!({
                "name": "backend",
                "connectTimeout": "1s",
                "circuitBreakers": {"thresholds": [{"maxConnections": 10}, {"maxRequests": 3}]},
                "commonLbConfig": {"healthyPanicThreshold": {"value": 50}, "updateMergeWindow": "2s"}
            })
        );
    }

    #[test]
    fn a_oneof_member_clears_the_others() {
        let mut c = json!({"name": "a", "type": "EDS"});
        message(
            &mut c,
            json!({"clusterType": {"name": "envoy.clusters.aggregate"}}),
            &cluster(),
        );
        assert_eq!(
            c,
            json!({"name": "a", "clusterType": {"name": "envoy.clusters.aggregate"}})
        );
    }

    #[test]
    fn any_of_the_same_type_merges_of_another_replaces() {
        let hpo = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
        let mut c = json!({"typedExtensionProtocolOptions": {"x": {
            "@type": hpo,
            "commonHttpProtocolOptions": {"idleTimeout": "3600s"}
        }}});
        // Map entries replace by key, as in proto merge.
        message(
            &mut c,
            json!({"typedExtensionProtocolOptions": {"x": {"@type": hpo}}}),
            &cluster(),
        );
        assert_eq!(
            c["typedExtensionProtocolOptions"]["x"],
            json!({"@type": hpo})
        );

        let f = proto_json::message("envoy.config.listener.v3.Filter").unwrap();
        let tcp = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
        let mut filter =
            json!({"name": "t", "typedConfig": {"@type": tcp, "statPrefix": "a", "cluster": "c"}});
        message(
            &mut filter,
            json!({"typedConfig": {"@type": tcp, "statPrefix": "b"}}),
            &f,
        );
        assert_eq!(
            filter["typedConfig"],
            json!({"@type": tcp, "statPrefix": "b", "cluster": "c"})
        );
    }
}
