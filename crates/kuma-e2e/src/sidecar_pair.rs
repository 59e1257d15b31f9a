//! Two services, each behind its own kuma-dp and Envoy: `web` calls
//! `backend` through its outbound listener, so a request to `web_outbound`
//! crosses both sidecars before reaching one of backend's instances.
//! What the mTLS tests and benchmark run on (in the `default` mesh, one
//! instance), and the traffic policy tests (each in a mesh of its own
//! without Kuma's initial policies, with the backend instances a policy
//! tells apart), see [`PairOptions`].

use serde_json::{Value, json};

use crate::binaries::Binaries;
use crate::control_plane::ControlPlane;
use crate::dataplane::{Dataplane, Inbound, Outbound, dataplane_yaml_tagged};
use crate::free_port;
use crate::service::TestService;

pub const MESH: &str = "default";

/// Where a [`SidecarPair`] runs and which instances backend has.
#[derive(Debug, Clone)]
pub struct PairOptions {
    mesh: String,
    /// Whether to create `mesh` (without initial policies) first.
    create_mesh: bool,
    /// Each instance's name and extra inbound tags, in start order.
    backends: Vec<(String, Vec<(String, String)>)>,
    /// Extra tags on web's inbound.
    web_tags: Vec<(String, String)>,
}

impl Default for PairOptions {
    /// The `default` mesh as it is, and one instance, `backend-1`.
    fn default() -> PairOptions {
        PairOptions {
            mesh: MESH.to_string(),
            create_mesh: false,
            backends: vec![("backend-1".to_string(), Vec::new())],
            web_tags: Vec::new(),
        }
    }
}

impl PairOptions {
    /// In mesh `name`, created first without Kuma's initial policies (see
    /// [`ControlPlane::create_mesh_without_initial_policies`]).
    pub fn bare_mesh(name: &str) -> PairOptions {
        PairOptions {
            mesh: name.to_string(),
            create_mesh: true,
            ..PairOptions::default()
        }
    }

    /// backend's instances by name (each one's app answers with its name),
    /// started in this order.
    pub fn backends(self, names: &[&str]) -> PairOptions {
        let tagged: Vec<(&str, &[(&str, &str)])> = names.iter().map(|n| (*n, &[][..])).collect();
        self.tagged_backends(&tagged)
    }

    /// backend's instances by name with tags added to each one's inbound
    /// (say `version: v1`, for MeshServiceSubset backendRefs).
    pub fn tagged_backends(mut self, instances: &[(&str, &[(&str, &str)])]) -> PairOptions {
        self.backends = instances
            .iter()
            .map(|(name, tags)| (name.to_string(), owned(tags)))
            .collect();
        self
    }

    /// Tags added to web's inbound (say the node it runs on, for locality
    /// awareness).
    pub fn web_tags(mut self, tags: &[(&str, &str)]) -> PairOptions {
        self.web_tags = owned(tags);
        self
    }
}

fn owned(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn borrowed(tags: &[(String, String)]) -> Vec<(&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// One instance of backend: its app, its proxy (kuma-dp + Envoy) and the
/// proxy's inbound port, the endpoint callers' Envoys balance over.
pub struct BackendInstance {
    pub name: String,
    pub app: TestService,
    pub dp: Dataplane,
    pub inbound: u16,
}

impl BackendInstance {
    /// Starts the app `name` (answering its name) and its proxy in `mesh`
    /// as an instance of service `backend` with `tags` on its inbound, and
    /// waits until its Envoy is ready.
    pub async fn start(
        binaries: &Binaries,
        cp: &ControlPlane,
        mesh: &str,
        name: &str,
        tags: &[(&str, &str)],
    ) -> BackendInstance {
        let app = TestService::start(name).await.expect("backend app");
        let inbound = free_port();
        let yaml = dataplane_yaml_tagged(
            mesh,
            name,
            &[Inbound {
                port: inbound,
                service_port: app.port(),
                service: "backend".into(),
            }],
            tags,
            &[],
        );
        let dp = Dataplane::start_in_mesh(binaries, cp, mesh, name, &yaml).await;
        BackendInstance {
            name: name.to_string(),
            app,
            dp,
            inbound,
        }
    }
}

pub struct SidecarPair {
    pub mesh: String,
    pub web: Dataplane,
    /// The first backend instance's proxy.
    pub backend: Dataplane,
    /// web's outbound listener for backend: traffic through both proxies.
    pub web_outbound: u16,
    /// The first backend instance's inbound listener: a request here skips
    /// web's proxy.
    pub backend_inbound: u16,
    /// The first backend instance's application itself: no proxy at all.
    pub backend_app_port: u16,
    /// The first backend instance's application, to steer or count.
    pub backend_app: TestService,
    /// backend's further instances, in the order asked for.
    pub more_backends: Vec<BackendInstance>,
    _web_app: TestService,
}

impl SidecarPair {
    /// Starts backend-1 (answering its name) and web in the `default` mesh,
    /// and waits until both Envoys are ready. Does not wait for traffic.
    pub async fn start(binaries: &Binaries, cp: &ControlPlane) -> SidecarPair {
        SidecarPair::start_with(binaries, cp, &PairOptions::default()).await
    }

    /// Creates the mesh if asked to, starts backend's instances and then
    /// web with one outbound to backend, and waits until every Envoy is
    /// ready. Does not wait for traffic.
    pub async fn start_with(
        binaries: &Binaries,
        cp: &ControlPlane,
        options: &PairOptions,
    ) -> SidecarPair {
        let mesh = options.mesh.as_str();
        if options.create_mesh {
            cp.create_mesh_without_initial_policies(mesh).await;
        }
        let mut instances = Vec::new();
        for (name, tags) in &options.backends {
            instances.push(BackendInstance::start(binaries, cp, mesh, name, &borrowed(tags)).await);
        }
        let mut instances = instances.into_iter();
        let first = instances.next().expect("backend has at least one instance");

        let web_app = TestService::start("web").await.expect("web app");
        let web_outbound = free_port();
        let web_yaml = dataplane_yaml_tagged(
            mesh,
            "web",
            &[Inbound {
                port: free_port(),
                service_port: web_app.port(),
                service: "web".into(),
            }],
            &borrowed(&options.web_tags),
            &[Outbound {
                port: web_outbound,
                service: "backend".into(),
            }],
        );
        let web = Dataplane::start_in_mesh(binaries, cp, mesh, "web", &web_yaml).await;
        SidecarPair {
            mesh: mesh.to_string(),
            web,
            backend: first.dp,
            web_outbound,
            backend_inbound: first.inbound,
            backend_app_port: first.app.port(),
            backend_app: first.app,
            more_backends: instances.collect(),
            _web_app: web_app,
        }
    }
}

/// A policy of `kind` from the whole `mesh` to all of it, with one `to`
/// entry whose `default` is `to_default`.
pub fn mesh_wide_policy(kind: &str, mesh: &str, name: &str, to_default: Value) -> Value {
    json!({
        "type": kind,
        "mesh": mesh,
        "name": name,
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "to": [{"targetRef": {"kind": "Mesh"}, "default": to_default}],
        },
    })
}

/// A mesh-wide MeshHealthCheck quick enough for tests: a check every
/// second, an endpoint out after two failures and back after one success,
/// no panic mode. `checker` adds the rest (`http`, `tcp`, `grpc`, ...).
pub fn quick_health_check(mesh: &str, name: &str, checker: Value) -> Value {
    let mut conf = json!({
        "interval": "1s",
        "timeout": "1s",
        "unhealthyThreshold": 2,
        "healthyThreshold": 1,
        "healthyPanicThreshold": 0,
    });
    if let (Some(conf), Value::Object(extra)) = (conf.as_object_mut(), checker) {
        conf.extend(extra);
    }
    mesh_wide_policy("MeshHealthCheck", mesh, name, conf)
}

/// The `default` Mesh with mTLS on: one builtin backend `ca-1` in `mode`
/// (STRICT or PERMISSIVE), proxy certificates valid for `dp_cert_expiration`
/// (Kuma's duration format; empty for the default).
pub fn mtls_mesh(mode: &str, dp_cert_expiration: &str) -> Value {
    let mut backend = json!({"name": "ca-1", "type": "builtin", "mode": mode});
    if !dp_cert_expiration.is_empty() {
        backend["dpCert"] = json!({"rotation": {"expiration": dp_cert_expiration}});
    }
    json!({
        "type": "Mesh",
        "name": MESH,
        "mtls": {"enabledBackend": "ca-1", "backends": [backend]},
    })
}

/// Serial numbers of the proxy certificates an Envoy holds now, from its
/// admin `/certs` (`cert_chain` entries only, not the trusted CAs).
pub async fn proxy_cert_serials(dp: &Dataplane) -> Result<Vec<String>, String> {
    let text = dp.admin("/certs").await?;
    let certs: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let mut serials: Vec<String> = certs["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
        .filter_map(|c| c["serial_number"].as_str().map(str::to_string))
        .collect();
    serials.sort();
    serials.dedup();
    Ok(serials)
}
