//! Resource kinds that are not targetRef policies.

pub mod address;
pub mod data_source;
pub mod dataplane;
pub mod hostname_generator;
pub mod mesh;
pub mod mesh_external_service;
pub mod mesh_gateway;
pub mod mesh_gateway_route;
pub mod mesh_identity;
pub mod mesh_multi_zone_service;
pub mod mesh_open_telemetry_backend;
pub mod mesh_service;
pub mod mesh_trust;
pub(crate) mod proto_enum;
pub mod secret;
pub mod selector;
pub mod tags;
pub mod zone;
pub mod zone_egress;
pub mod zone_ingress;
