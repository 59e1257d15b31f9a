//! Dataplane tokens: RS256 JWTs proving a proxy's identity, as Kuma issues
//! them. Each mesh has its own signing key, created on first use and kept in
//! the store as the Secret `dataplane-token-signing-key-<mesh>-<serial>` in
//! that mesh, so restarts and other control planes on the same store sign
//! and verify with the same key. Tokens themselves are never stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, Validation};
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::{Kind, Resource, ResourceKey};
use kuma_store::{ResourceStore, StoreError};
use serde::{Deserialize, Serialize};

mod key_cache;
pub mod signing;

pub use signing::DEFAULT_KEY_ID;
use signing::{KeyFamily, SigningKey, SigningKeys, random_id};

/// Kuma's prefix; the mesh name and `-<serial>` follow.
pub const SIGNING_KEY_PREFIX: &str = "dataplane-token-signing-key-";
/// Kuma's default lifetime when a request names none: 10 years.
pub const DEFAULT_VALID_FOR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The signing key's secret name in `mesh` for key id `kid`.
pub fn signing_key_name(mesh: &str, kid: &str) -> String {
    format!("{SIGNING_KEY_PREFIX}{mesh}-{kid}")
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("mesh {0:?} does not exist")]
    MeshNotFound(String),
    #[error("store failure")]
    Store(#[source] StoreError),
    #[error("could not generate a signing key: {0}")]
    KeyGeneration(String),
    #[error("signing key {name} in mesh {mesh} is not a usable RSA private key")]
    BadSigningKey { mesh: String, name: String },
    #[error("could not sign a token")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The token is not acceptable; the message is safe to show the client.
    #[error("{0}")]
    Invalid(String),
}

/// Who a token lets in. Empty `name`/`mesh` mean "any" (a mesh-wide token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataplaneIdentity {
    pub name: String,
    pub mesh: String,
    /// Tag name -> allowed values.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    pub proxy_type: String,
}

/// The claims as Kuma writes them (Go field names, registered claims).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Mesh", default)]
    mesh: String,
    #[serde(rename = "Tags", default)]
    tags: Option<BTreeMap<String, Vec<String>>>,
    #[serde(rename = "Type", default)]
    proxy_type: String,
    #[serde(rename = "Workload", default)]
    workload: String,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// A mesh's dataplane token signing keys.
fn key_family(mesh: &str) -> KeyFamily {
    KeyFamily::in_mesh(mesh, format!("{SIGNING_KEY_PREFIX}{mesh}-"))
}

/// Issues and verifies dataplane tokens; cheap to share.
pub struct DataplaneTokens {
    store: Arc<dyn ResourceStore>,
    /// Parsed keys, with the store version they came from.
    keys: SigningKeys,
    /// Keys token checks found, kept until their Secret changes.
    verifying: key_cache::KeyCache,
}

impl DataplaneTokens {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Self {
            keys: SigningKeys::new(store.clone()),
            verifying: key_cache::KeyCache::new(store.subscribe()),
            store,
        }
    }

    /// A signed token for `identity`, valid for `valid_for`.
    pub async fn issue(
        &self,
        identity: &DataplaneIdentity,
        valid_for: Duration,
    ) -> Result<String, TokenError> {
        let key = self.keys.latest(&key_family(&identity.mesh)).await?;
        // Backdated a little, as Kuma does, to tolerate clock skew.
        let now = Utc::now().timestamp() - 5;
        let valid_for = i64::try_from(valid_for.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            name: identity.name.clone(),
            mesh: identity.mesh.clone(),
            tags: (!identity.tags.is_empty()).then(|| {
                identity
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
                    .collect()
            }),
            proxy_type: identity.proxy_type.clone(),
            workload: String::new(),
            jti: random_id(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(valid_for).saturating_add(5),
        };
        key.sign(&claims)
    }

    /// Checks a token presented for a proxy of `mesh`: signed by that mesh's
    /// key, unexpired. Returns the identity it grants.
    pub async fn verify(&self, token: &str, mesh: &str) -> Result<DataplaneIdentity, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("could not parse token: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid(format!(
                "unsupported token alg {:?}. Allowed algorithm is RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("JWT token must have kid header".into()))?;
        let name = signing_key_name(mesh, &kid);
        let secret_key = ResourceKey::in_mesh(Kind::Secret, mesh, &name);
        let key = match self.verifying.lookup(&secret_key) {
            key_cache::Lookup::Hit(key) => key,
            key_cache::Lookup::Miss(ticket) => match self.store.get(&secret_key).await {
                Ok(secret) => {
                    let key = self.parse_key(mesh, &kid, &secret)?;
                    self.verifying.remember(secret_key, key.clone(), ticket);
                    key
                }
                Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => {
                    return Err(TokenError::Invalid(format!(
                        "there is no signing key with KID {kid}. Secret of name {name:?} in mesh {mesh:?} is not found. If signing key was rotated, regenerate the token"
                    )));
                }
                Err(e) => return Err(TokenError::Store(e)),
            },
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| TokenError::Invalid(format!("token is not valid: {e}")))?;
        let c = data.claims;
        Ok(DataplaneIdentity {
            name: c.name,
            mesh: c.mesh,
            tags: c
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            proxy_type: c.proxy_type,
        })
    }

    /// The key of a stored secret, parsed once per secret version.
    fn parse_key(
        &self,
        mesh: &str,
        kid: &str,
        secret: &Resource,
    ) -> Result<Arc<SigningKey>, TokenError> {
        self.keys.parse(&key_family(mesh), kid, secret)
    }
}

/// Whether `identity` may act as the Dataplane `mesh`/`name`; the reason
/// when not (Kuma's wording).
pub fn authorize(
    identity: &DataplaneIdentity,
    mesh: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    dataplane: Option<&DataplaneSpec>,
) -> Result<(), String> {
    if !identity.name.is_empty() && identity.name != name {
        return Err(format!(
            "proxy name from requestor: {name} is different than in token: {}",
            identity.name
        ));
    }
    if !identity.mesh.is_empty() && identity.mesh != mesh {
        return Err(format!(
            "proxy mesh from requestor: {mesh} is different than in token: {}",
            identity.mesh
        ));
    }
    for (tag, allowed) in &identity.tags {
        // A tag may be carried as a label or on any inbound.
        let mut values: BTreeSet<&str> = labels.get(tag).map(String::as_str).into_iter().collect();
        if let Some(dp) = dataplane {
            values.extend(
                dp.inbounds()
                    .iter()
                    .filter_map(|i| i.tags.get(tag).map(String::as_str)),
            );
        }
        if values.is_empty() {
            return Err(format!(
                "dataplane has no tag {tag:?} required by the token"
            ));
        }
        if let Some(v) = values.iter().find(|v| !allowed.contains(**v)) {
            return Err(format!(
                "dataplane contains tag {tag:?} with value {v:?} which is not allowed with this token. Allowed values in token are {:?}",
                allowed.iter().collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}
