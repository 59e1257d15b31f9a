//! Envoy v3 bootstrap for a data plane proxy.
