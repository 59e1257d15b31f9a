//! The control plane's REST API, as far as the load generator writes to it.

use serde_json::{Value, json};

use crate::LoadError;

/// A client of `kuma-cp`'s API server (port 5681).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str) -> Result<ApiClient, LoadError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| LoadError::Api {
                what: "building the HTTP client".into(),
                message: e.to_string(),
            })?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    /// `PUT` a resource; returns once the control plane acknowledged it.
    pub async fn put(&self, path: &str, body: &Value) -> Result<(), LoadError> {
        let r = self
            .http
            .put(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| api_error(format!("PUT {path}"), e))?;
        let status = r.status();
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            return Err(LoadError::Api {
                what: format!("PUT {path}"),
                message: format!("{status}: {text}"),
            });
        }
        Ok(())
    }

    /// Deletes a mesh and everything in it; a mesh that is not there is fine.
    pub async fn delete_mesh(&self, mesh: &str) -> Result<(), LoadError> {
        self.delete(&format!("/meshes/{mesh}")).await
    }

    /// `DELETE` a resource; one that is not there is fine.
    pub async fn delete(&self, path: &str) -> Result<(), LoadError> {
        let r = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| api_error(format!("DELETE {path}"), e))?;
        let status = r.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        let text = r.text().await.unwrap_or_default();
        Err(LoadError::Api {
            what: format!("DELETE {path}"),
            message: format!("{status}: {text}"),
        })
    }

    /// A dataplane token for `name` in `mesh`.
    pub async fn dataplane_token(&self, mesh: &str, name: &str) -> Result<String, LoadError> {
        let what = format!("POST /tokens/dataplane for {mesh}/{name}");
        let r = self
            .http
            .post(format!("{}/tokens/dataplane", self.base))
            .json(&json!({"mesh": mesh, "name": name, "validFor": "24h"}))
            .send()
            .await
            .map_err(|e| api_error(what.clone(), e))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| api_error(what.clone(), e))?;
        if !status.is_success() {
            return Err(LoadError::Api {
                what,
                message: format!("{status}: {text}"),
            });
        }
        Ok(text.trim().to_string())
    }
}

fn api_error(what: String, e: reqwest::Error) -> LoadError {
    LoadError::Api {
        what,
        message: e.to_string(),
    }
}
