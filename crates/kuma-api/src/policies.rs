//! targetRef policies: one module per policy (typed spec + Kuma's checks),
//! the shared [`target_ref`] type and its rules, and [`values`] shared by
//! several policies.

pub mod mesh_access_log;
pub mod mesh_circuit_breaker;
pub mod mesh_fault_injection;
pub mod mesh_health_check;
pub mod mesh_http_route;
pub mod mesh_load_balancing_strategy;
pub mod mesh_metric;
pub mod mesh_passthrough;
pub mod mesh_proxy_patch;
pub mod mesh_rate_limit;
pub mod mesh_retry;
pub mod mesh_tcp_route;
pub mod mesh_timeout;
pub mod mesh_tls;
pub mod mesh_trace;
pub mod mesh_traffic_permission;
pub mod target_ref;
pub mod values;

#[cfg(test)]
mod testing;

pub use target_ref::{ProxyType, TargetRef, TargetRefKind, TargetRefRules};
