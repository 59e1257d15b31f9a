//! `POST /tokens/user`: user tokens, issued by the control plane to an
//! admin caller.

use serde::Serialize;

use super::{ApiClient, ClientError, NotFoundMeans, check};

/// Kuma's `POST /tokens/user` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTokenRequest {
    pub name: String,
    pub groups: Vec<String>,
    pub valid_for: String,
}

impl ApiClient {
    /// The signed token, as the control plane returns it (plain text).
    pub fn generate_user_token(&self, request: &UserTokenRequest) -> Result<String, ClientError> {
        let url = self.url("tokens/user")?;
        let resp = self.http.post(url).json(request).send()?;
        check(resp, NotFoundMeans::Rejection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uses_kuma_field_names() {
        let request = UserTokenRequest {
            name: "john".into(),
            groups: vec!["team-a".into()],
            valid_for: "24h".into(),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"name": "john", "groups": ["team-a"], "validFor": "24h"})
        );
    }
}
