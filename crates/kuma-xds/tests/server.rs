//! The ADS server over real gRPC on loopback, driven by envoy-types'
//! generated client the way Envoy drives it.

mod server {
    pub mod delta;
    pub mod sotw;
    pub mod support;
}
