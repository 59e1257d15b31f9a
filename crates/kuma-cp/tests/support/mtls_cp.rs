//! A control plane for the mTLS tests: started in process on a work
//! directory, driven over its REST API, its Secrets read from the store.

use kuma_api::{Kind, ResourceKey, Spec};
use kuma_cp::config::StoreType;
use kuma_cp::{Config, ControlPlane};
use serde_json::{Value, json};

pub struct Cp {
    pub cp: ControlPlane,
    pub http: reqwest::Client,
}

impl Cp {
    pub async fn start(dir: &std::path::Path, store: StoreType) -> Cp {
        let mut config = Config::for_tests();
        config.general.work_dir = Some(dir.to_path_buf());
        config.store.store_type = store;
        let cp = ControlPlane::start(config).await.unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Cp { cp, http }
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}{path}", self.cp.api_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn put_ok(&self, path: &str, body: Value) {
        let (status, body) = self.put(path, body).await;
        assert!((200..300).contains(&status), "PUT {path}: {status} {body}");
    }

    pub async fn secret_data(&self, mesh: &str, name: &str) -> Option<(String, u64)> {
        let key = ResourceKey::in_mesh(Kind::Secret, mesh, name);
        match self.cp.store().get(&key).await {
            Ok(r) => match r.spec {
                Spec::Secret(s) => Some((s.data.unwrap_or_default(), r.meta.version)),
                _ => panic!("{key} is not a Secret"),
            },
            Err(kuma_store::StoreError::NotFound(_)) => None,
            Err(e) => panic!("{e}"),
        }
    }
}

pub fn mk_mesh_builtin(name: &str, backends: &[&str], enabled: &str, expiration: &str) -> Value {
    let backends: Vec<Value> = backends
        .iter()
        .map(|b| {
            let mut backend = json!({"name": b, "type": "builtin"});
            if !expiration.is_empty() {
                backend["dpCert"] = json!({"rotation": {"expiration": expiration}});
            }
            backend
        })
        .collect();
    json!({"type": "Mesh", "name": name,
           "mtls": {"enabledBackend": enabled, "backends": backends}})
}
