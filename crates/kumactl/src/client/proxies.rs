//! Data plane proxy endpoints of the API: dataplane tokens, insights and
//! the Envoy configuration the control plane serves a proxy.

use serde::Serialize;
use serde_json::Value;

use super::{ApiClient, ClientError, NotFoundMeans, ResourcePage, check, json_body, segment};

/// Kuma's `POST /tokens/dataplane` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneTokenRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub mesh: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, Vec<String>>,
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub proxy_type: String,
    pub valid_for: String,
}

impl ApiClient {
    /// The signed token, as the control plane returns it (plain text).
    pub fn generate_dataplane_token(
        &self,
        request: &DataplaneTokenRequest,
    ) -> Result<String, ClientError> {
        let url = self.url("tokens/dataplane")?;
        let resp = self.http.post(url).json(request).send()?;
        check(resp, NotFoundMeans::Rejection)
    }

    /// Every Dataplane of `mesh` with its insight (`dataplanes+insights`),
    /// following `next` links.
    pub fn dataplane_overviews(&self, mesh: &str) -> Result<Vec<Value>, ClientError> {
        let mut url = self.url(&format!("meshes/{}/dataplanes+insights", segment(mesh)))?;
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let value = json_body(self.http.get(url.clone()).send()?)?;
            let mut page: ResourcePage = serde_json::from_value(value)
                .map_err(|e| ClientError::BadResponse(e.to_string()))?;
            items.append(&mut page.items);
            let Some(next) = page.next.filter(|n| !n.is_empty()) else {
                return Ok(items);
            };
            if !seen.insert(next.clone()) {
                return Err(ClientError::BadResponse(format!(
                    "the list's next page {next} was already fetched"
                )));
            }
            url = self
                .base
                .join(&next)
                .map_err(|e| ClientError::BadResponse(format!("next {next:?}: {e}")))?;
        }
    }

    /// The Envoy configuration dump the control plane serves the proxy, as text.
    pub fn dataplane_xds(&self, mesh: &str, name: &str) -> Result<String, ClientError> {
        let url = self.url(&format!(
            "meshes/{}/dataplanes/{}/xds",
            segment(mesh),
            segment(name)
        ))?;
        check(self.http.get(url).send()?, NotFoundMeans::Absence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_request_uses_kuma_field_names() {
        let mut request = DataplaneTokenRequest {
            name: "web-1".into(),
            mesh: "default".into(),
            valid_for: "24h".into(),
            ..DataplaneTokenRequest::default()
        };
        request
            .tags
            .insert("kuma.io/service".into(), vec!["web".into(), "api".into()]);
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "web-1", "mesh": "default", "validFor": "24h",
                "tags": {"kuma.io/service": ["web", "api"]}
            })
        );
    }
}
