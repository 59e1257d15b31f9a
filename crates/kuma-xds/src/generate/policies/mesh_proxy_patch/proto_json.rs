//! Envoy messages as proto JSON (camelCase names, `@type` on `Any`),
//! through the descriptors of Envoy's API that envoy-types is built from.
//! MeshProxyPatch values and JSON patches are written against this form.

use std::sync::LazyLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;

/// The file descriptor set of envoy-types (see descriptors/README.md).
static ENVOY_DESCRIPTORS: &[u8] = include_bytes!("../../../../descriptors/envoy-types.bin");

static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(ENVOY_DESCRIPTORS).map_err(|e| e.to_string()));

#[derive(Debug, thiserror::Error)]
pub enum ProtoJsonError {
    #[error("Envoy descriptors do not load: {0}")]
    Descriptors(String),
    #[error("unknown Envoy type {0}")]
    UnknownType(String),
    #[error("{0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// The descriptor of a message by its full name
/// (`envoy.config.cluster.v3.Cluster`).
pub fn message(full_name: &str) -> Result<MessageDescriptor, ProtoJsonError> {
    let pool = POOL
        .as_ref()
        .map_err(|e| ProtoJsonError::Descriptors(e.clone()))?;
    pool.get_message_by_name(full_name)
        .ok_or_else(|| ProtoJsonError::UnknownType(full_name.to_string()))
}

/// Encoded bytes of `full_name` as proto JSON.
pub fn to_json(full_name: &str, bytes: &[u8]) -> Result<Value, ProtoJsonError> {
    let msg = DynamicMessage::decode(message(full_name)?, bytes)?;
    Ok(serde_json::to_value(&msg)?)
}

/// Proto JSON of `full_name` encoded; unknown fields and wrong types are
/// errors, as Envoy would refuse them.
pub fn from_json(full_name: &str, value: Value) -> Result<Vec<u8>, ProtoJsonError> {
    let msg = DynamicMessage::deserialize(message(full_name)?, value)?;
    Ok(msg.encode_to_vec())
}

/// A YAML (or JSON) text read as `full_name`, in canonical proto JSON:
/// camelCase names, default values left out, so that merging it sets only
/// what the text sets.
pub fn parse_yaml(full_name: &str, text: &str) -> Result<Value, ProtoJsonError> {
    let raw: Value = serde_yaml::from_str(text)?;
    canonical(full_name, raw)
}

/// `value` read as `full_name` and written back in canonical proto JSON.
pub fn canonical(full_name: &str, value: Value) -> Result<Value, ProtoJsonError> {
    let msg = DynamicMessage::deserialize(message(full_name)?, value)?;
    Ok(serde_json::to_value(&msg)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use envoy_types::pb::google::protobuf::{Any, Duration};

    #[test]
    fn cluster_round_trips_through_json() {
        let cluster = Cluster {
            name: "backend".into(),
            connect_timeout: Some(Duration {
                seconds: 5,
                nanos: 0,
            }),
            ..Default::default()
        };
        let json = to_json("envoy.config.cluster.v3.Cluster", &cluster.encode_to_vec()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "backend", "connectTimeout": "5s"})
        );
        let bytes = from_json("envoy.config.cluster.v3.Cluster", json).unwrap();
        assert_eq!(Cluster::decode(bytes.as_slice()).unwrap(), cluster);
    }

    #[test]
    fn any_is_written_with_its_type() {
        let tcp = TcpProxy {
            stat_prefix: "db".into(),
            ..Default::default()
        };
        let f = Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(Any {
                type_url:
                    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
                        .into(),
                value: tcp.encode_to_vec(),
            })),
        };
        let json = to_json("envoy.config.listener.v3.Filter", &f.encode_to_vec()).unwrap();
        assert_eq!(
            json["typedConfig"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
        );
        assert_eq!(json["typedConfig"]["statPrefix"], "db");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            parse_yaml("envoy.config.cluster.v3.Cluster", "name: x\nnoSuchField: 1").unwrap_err();
        assert!(err.to_string().contains("noSuchField"), "{err}");
        // snake_case is read too, and written back in camelCase.
        let v = parse_yaml("envoy.config.cluster.v3.Cluster", "connect_timeout: 2s").unwrap();
        assert_eq!(v, serde_json::json!({"connectTimeout": "2s"}));
    }
}
