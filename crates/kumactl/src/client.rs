//! A thin client of the control plane's REST API.

use std::time::Duration;

use kuma_api::{Kind, Scope};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::ApiServer;

mod inspect;
mod proxies;
mod user_tokens;
pub use proxies::DataplaneTokenRequest;
pub use user_tokens::UserTokenRequest;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("API Server URL is invalid: {0}")]
    InvalidUrl(String),
    #[error("could not configure HTTP client with TLS: {0}")]
    Tls(String),
    /// The request failed on the way; the message carries every cause,
    /// since "error sending request" alone tells a user nothing.
    #[error("{0}")]
    Transport(String),
    /// The resource does not exist (404).
    #[error("resource not found")]
    NotFound,
    /// A structured error from the API server.
    #[error("{0}")]
    Api(ServerError),
    /// Any other unexpected answer.
    #[error("({status}): {body}")]
    Unexpected { status: u16, body: String },
    #[error("invalid response from the control plane: {0}")]
    BadResponse(String),
}

/// Kuma's API error body. Newer servers send `detail` and
/// `invalid_parameters`; older ones `details` and `causes`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerError {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub invalid_parameters: Vec<InvalidParameter>,
    #[serde(default)]
    pub causes: Vec<Cause>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct InvalidParameter {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Cause {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
}

impl ServerError {
    /// Every (field, reason) the server reported, whichever spelling it used.
    pub fn violations(&self) -> Vec<(&str, &str)> {
        if self.invalid_parameters.is_empty() {
            self.causes
                .iter()
                .map(|c| (c.field.as_str(), c.message.as_str()))
                .collect()
        } else {
            self.invalid_parameters
                .iter()
                .map(|p| (p.field.as_str(), p.reason.as_str()))
                .collect()
        }
    }
}

impl std::fmt::Display for ServerError {
    // Kuma's one-line form: `Title (Detail);field=reason ;field=reason `.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = if self.detail.is_empty() {
            &self.details
        } else {
            &self.detail
        };
        write!(f, "{} ({})", self.title, detail)?;
        for (field, reason) in self.violations() {
            write!(f, ";{field}={reason} ")?;
        }
        Ok(())
    }
}

/// One page of a list, in Kuma's list shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResourcePage {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub items: Vec<Value>,
    #[serde(default)]
    pub next: Option<String>,
}

/// What `GET /` says about the server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ServerInfo {
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub version: String,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// Whether a PUT created or replaced the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Updated,
}

pub struct ApiClient {
    http: Client,
    base: Url,
}

impl ApiClient {
    pub fn new(server: &ApiServer, timeout: Option<Duration>) -> Result<Self, ClientError> {
        let mut base = Url::parse(&server.url)
            .map_err(|e| ClientError::InvalidUrl(format!("{:?}: {e}", server.url)))?;
        if !base.path().ends_with('/') {
            // So that joining `meshes` keeps a path prefix like `/kuma`.
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for h in &server.headers {
            let name = reqwest::header::HeaderName::from_bytes(h.key.as_bytes())
                .map_err(|e| ClientError::InvalidUrl(format!("header {:?}: {e}", h.key)))?;
            let value = reqwest::header::HeaderValue::from_str(&h.value)
                .map_err(|e| ClientError::InvalidUrl(format!("header {:?}: {e}", h.key)))?;
            headers.insert(name, value);
        }
        if let Some(token) = server
            .auth_conf
            .get("token")
            .filter(|_| server.auth_type == "tokens")
        {
            let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::InvalidUrl(format!("token: {e}")))?;
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = Client::builder()
            .user_agent(concat!("kumactl/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(timeout)
            .danger_accept_invalid_certs(server.skip_verify);
        if !server.ca_cert_file.is_empty() {
            let pem = std::fs::read(&server.ca_cert_file)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", server.ca_cert_file)))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            builder = builder.add_root_certificate(cert);
        }
        if !server.client_cert_file.is_empty() && !server.client_key_file.is_empty() {
            let mut pem = std::fs::read(&server.client_cert_file)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", server.client_cert_file)))?;
            let key = std::fs::read(&server.client_key_file)
                .map_err(|e| ClientError::Tls(format!("{}: {e}", server.client_key_file)))?;
            pem.push(b'\n');
            pem.extend(key);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| ClientError::Tls(e.to_string()))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Self { http, base })
    }

    /// The URL of `path` (relative, without leading slash) under the API root.
    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))
    }

    /// Path of one resource: `meshes/{name}`, `{plural}/{name}` for global
    /// kinds, `meshes/{mesh}/{plural}/{name}` otherwise.
    pub fn item_path(kind: Kind, mesh: &str, name: &str) -> String {
        format!("{}/{}", Self::collection_path(kind, mesh), segment(name))
    }

    pub fn collection_path(kind: Kind, mesh: &str) -> String {
        match kind.scope() {
            Scope::Global => kind.plural().to_string(),
            Scope::Mesh => format!("meshes/{}/{}", segment(mesh), kind.plural()),
        }
    }

    pub fn index(&self) -> Result<ServerInfo, ClientError> {
        let resp = self.http.get(self.url("")?).send()?;
        let value = json_body(resp)?;
        serde_json::from_value(value).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    pub fn get(&self, kind: Kind, mesh: &str, name: &str) -> Result<Value, ClientError> {
        let url = self.url(&Self::item_path(kind, mesh, name))?;
        json_body(self.http.get(url).send()?)
    }

    /// One page starting at `offset` (Kuma's opaque offset) of at most `size` items.
    pub fn list_page(
        &self,
        kind: Kind,
        mesh: &str,
        size: Option<usize>,
        offset: Option<&str>,
    ) -> Result<ResourcePage, ClientError> {
        let mut url = self.url(&Self::collection_path(kind, mesh))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(offset) = offset.filter(|o| !o.is_empty()) {
                q.append_pair("offset", offset);
            }
            if let Some(size) = size.filter(|s| *s > 0) {
                q.append_pair("size", &size.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.fetch_page(url)
    }

    /// Every item, following `next` links page after page.
    pub fn list_all(&self, kind: Kind, mesh: &str) -> Result<ResourcePage, ClientError> {
        let mut page = self.list_page(kind, mesh, None, None)?;
        let mut items = std::mem::take(&mut page.items);
        let mut seen = std::collections::HashSet::new();
        while let Some(next) = page.next.take().filter(|n| !n.is_empty()) {
            // A server repeating a link would otherwise keep us here forever.
            if !seen.insert(next.clone()) {
                return Err(ClientError::BadResponse(format!(
                    "the list's next page {next} was already fetched"
                )));
            }
            let url = self
                .base
                .join(&next)
                .map_err(|e| ClientError::BadResponse(format!("next {next:?}: {e}")))?;
            page = self.fetch_page(url)?;
            items.append(&mut page.items);
        }
        Ok(ResourcePage {
            total: page.total.max(items.len() as u64),
            items,
            next: None,
        })
    }

    fn fetch_page(&self, url: Url) -> Result<ResourcePage, ClientError> {
        let value = json_body(self.http.get(url).send()?)?;
        serde_json::from_value(value).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// PUTs `body` as resource `name`; reports whether it existed before.
    pub fn upsert(
        &self,
        kind: Kind,
        mesh: &str,
        name: &str,
        body: &Value,
    ) -> Result<Upsert, ClientError> {
        // Asking first, as Kuma's kumactl does, tells created from updated
        // whatever status code the server answers a PUT with.
        let existed = match self.get(kind, mesh, name) {
            Ok(_) => true,
            Err(ClientError::NotFound) => false,
            Err(e) => return Err(e),
        };
        let url = self.url(&Self::item_path(kind, mesh, name))?;
        let resp = self.http.put(url).json(body).send()?;
        // A 404 here is not "no such resource" (we are creating it): the
        // server's own explanation is what the user needs.
        check(resp, NotFoundMeans::Rejection)?;
        Ok(if existed {
            Upsert::Updated
        } else {
            Upsert::Created
        })
    }

    pub fn delete(&self, kind: Kind, mesh: &str, name: &str) -> Result<(), ClientError> {
        let url = self.url(&Self::item_path(kind, mesh, name))?;
        check(self.http.delete(url).send()?, NotFoundMeans::Absence)?;
        Ok(())
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        let mut last = message.clone();
        while let Some(cause) = source {
            // The blocking client wraps the async error, which says the same.
            let text = cause.to_string();
            if text != last {
                message.push_str(": ");
                message.push_str(&text);
            }
            last = text;
            source = cause.source();
        }
        ClientError::Transport(message)
    }
}

/// One path segment, percent-encoded so a name can never change the path.
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// How to read a 404.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotFoundMeans {
    /// The resource asked for does not exist.
    Absence,
    /// The server refused the request; its body says why.
    Rejection,
}

/// Turns an error status into a [`ClientError`]; returns the body otherwise.
fn check(resp: Response, not_found: NotFoundMeans) -> Result<String, ClientError> {
    let status = resp.status();
    let body = resp.text()?;
    if status == StatusCode::NOT_FOUND && not_found == NotFoundMeans::Absence {
        return Err(ClientError::NotFound);
    }
    if status.is_client_error() || status.is_server_error() {
        if let Ok(err) = serde_json::from_str::<ServerError>(&body)
            && !err.title.is_empty()
        {
            return Err(ClientError::Api(err));
        }
        return Err(ClientError::Unexpected {
            status: status.as_u16(),
            body,
        });
    }
    Ok(body)
}

fn json_body(resp: Response) -> Result<Value, ClientError> {
    let status = resp.status().as_u16();
    let body = check(resp, NotFoundMeans::Absence)?;
    serde_json::from_str(&body).map_err(|_| ClientError::Unexpected { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_kinds_scope() {
        assert_eq!(ApiClient::item_path(Kind::Mesh, "x", "demo"), "meshes/demo");
        assert_eq!(
            ApiClient::item_path(Kind::MeshTimeout, "default", "t1"),
            "meshes/default/meshtimeouts/t1"
        );
        assert_eq!(
            ApiClient::collection_path(Kind::ZoneIngress, "default"),
            "zoneingresses"
        );
        assert_eq!(
            ApiClient::item_path(Kind::Secret, "m", "a/b c"),
            "meshes/m/secrets/a%2Fb%20c"
        );
    }

    #[test]
    fn server_errors_read_both_spellings_and_print_like_kuma() {
        let new: ServerError = serde_json::from_str(
            r#"{"type":"/std-errors","status":400,"title":"Could not process resource","detail":"Resource is not valid","invalid_parameters":[{"field":"path","reason":"cannot be empty"},{"field":"mesh","reason":"cannot be empty"}]}"#,
        )
        .unwrap();
        assert_eq!(
            new.to_string(),
            "Could not process resource (Resource is not valid);path=cannot be empty ;mesh=cannot be empty "
        );
        let old: ServerError = serde_json::from_str(
            r#"{"title":"Bad","details":"x","causes":[{"field":"spec.a","message":"m"}]}"#,
        )
        .unwrap();
        assert_eq!(old.violations(), vec![("spec.a", "m")]);
        assert_eq!(old.to_string(), "Bad (x);spec.a=m ");
    }

    #[test]
    fn base_url_keeps_its_path_prefix() {
        let server = ApiServer {
            url: "http://cp:5681/prefix".into(),
            ..ApiServer::default()
        };
        let client = ApiClient::new(&server, None).unwrap();
        assert_eq!(
            client.url("meshes").unwrap().as_str(),
            "http://cp:5681/prefix/meshes"
        );
        let bad = ApiServer {
            url: "not a url".into(),
            ..ApiServer::default()
        };
        assert!(matches!(
            ApiClient::new(&bad, None),
            Err(ClientError::InvalidUrl(_))
        ));
    }
}
