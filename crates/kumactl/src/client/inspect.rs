//! Policy inspection endpoints: a Dataplane's rules and the Dataplanes a
//! policy selects.

use kuma_api::Kind;
use serde_json::Value;

use super::{ApiClient, ClientError, json_body};

impl ApiClient {
    /// `GET /meshes/{mesh}/dataplanes/{name}/_rules` (`InspectRulesResponse`).
    pub fn dataplane_rules(&self, mesh: &str, name: &str) -> Result<Value, ClientError> {
        let path = format!("{}/_rules", Self::item_path(Kind::Dataplane, mesh, name));
        json_body(self.http.get(self.url(&path)?).send()?)
    }

    /// `GET /meshes/{mesh}/{plural}/{name}/_resources/dataplanes`: one page
    /// (`InspectDataplanesForPolicyResponse`).
    pub fn dataplanes_for_policy(
        &self,
        kind: Kind,
        mesh: &str,
        name: &str,
        size: Option<usize>,
        offset: Option<usize>,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "{}/_resources/dataplanes",
            Self::item_path(kind, mesh, name)
        );
        let mut url = self.url(&path)?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(size) = size.filter(|s| *s > 0) {
                q.append_pair("size", &size.to_string());
            }
            if let Some(offset) = offset.filter(|o| *o > 0) {
                q.append_pair("offset", &offset.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        json_body(self.http.get(url).send()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_append_the_inspect_segments() {
        assert_eq!(
            format!(
                "{}/_rules",
                ApiClient::item_path(Kind::Dataplane, "m 1", "dp/1")
            ),
            "meshes/m%201/dataplanes/dp%2F1/_rules"
        );
    }
}
