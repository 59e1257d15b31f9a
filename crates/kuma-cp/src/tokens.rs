//! Dataplane tokens: RS256 JWTs proving a proxy's identity, as Kuma issues
//! them. Each mesh has its own signing key, created on first use and kept in
//! the store as the Secret `dataplane-token-signing-key-<mesh>-<serial>` in
//! that mesh, so restarts and other control planes on the same store sign
//! and verify with the same key. Tokens themselves are never stored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::kinds::secret::SecretSpec;
use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec};
use kuma_store::{ListQuery, ResourceStore, StoreError};
use serde::{Deserialize, Serialize};

/// Kuma's prefix; the mesh name and `-<serial>` follow.
pub const SIGNING_KEY_PREFIX: &str = "dataplane-token-signing-key-";
/// The serial of a mesh's first key (Kuma's default key id).
pub const DEFAULT_KEY_ID: &str = "1";
/// Kuma's default lifetime when a request names none: 10 years.
pub const DEFAULT_VALID_FOR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const RSA_BITS: usize = 2048;

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

struct SigningKey {
    kid: String,
    version: u64,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and verifies dataplane tokens; cheap to share.
pub struct DataplaneTokens {
    store: Arc<dyn ResourceStore>,
    /// Parsed keys by secret name, with the store version they came from.
    keys: Mutex<HashMap<(String, String), Arc<SigningKey>>>,
}

impl DataplaneTokens {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Self {
            store,
            keys: Mutex::default(),
        }
    }

    /// A signed token for `identity`, valid for `valid_for`.
    pub async fn issue(
        &self,
        identity: &DataplaneIdentity,
        valid_for: Duration,
    ) -> Result<String, TokenError> {
        let key = self.latest_key(&identity.mesh).await?;
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
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(TokenError::Sign)
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
        let key = match self
            .store
            .get(&ResourceKey::in_mesh(Kind::Secret, mesh, &name))
            .await
        {
            Ok(secret) => self.parse_key(mesh, &kid, &secret)?,
            Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => {
                return Err(TokenError::Invalid(format!(
                    "there is no signing key with KID {kid}. Secret of name {name:?} in mesh {mesh:?} is not found. If signing key was rotated, regenerate the token"
                )));
            }
            Err(e) => return Err(TokenError::Store(e)),
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

    /// The mesh's newest signing key, created when the mesh has none.
    async fn latest_key(&self, mesh: &str) -> Result<Arc<SigningKey>, TokenError> {
        if let Some(found) = self.newest_stored(mesh).await? {
            return Ok(found);
        }
        let pem = tokio::task::spawn_blocking(generate_pem)
            .await
            .map_err(|e| TokenError::KeyGeneration(e.to_string()))??;
        let name = signing_key_name(mesh, DEFAULT_KEY_ID);
        let now = Utc::now();
        let secret = Resource {
            meta: ResourceMeta {
                mesh: Some(mesh.to_string()),
                name: name.clone(),
                labels: BTreeMap::new(),
                creation_time: now,
                modification_time: now,
                version: 0,
            },
            spec: Spec::Secret(SecretSpec {
                data: Some(base64::engine::general_purpose::STANDARD.encode(pem)),
            }),
        };
        match self.store.create(secret).await {
            Ok(created) => {
                tracing::info!(%mesh, secret = %name, "created the dataplane token signing key");
                self.parse_key(mesh, DEFAULT_KEY_ID, &created)
            }
            // Another request or control plane created it first: use theirs.
            Err(StoreError::AlreadyExists(_)) => self.newest_stored(mesh).await?.ok_or_else(|| {
                TokenError::Store(StoreError::NotFound(ResourceKey::in_mesh(
                    Kind::Secret,
                    mesh,
                    &name,
                )))
            }),
            Err(StoreError::MeshNotFound(m)) => Err(TokenError::MeshNotFound(m)),
            Err(e) => Err(TokenError::Store(e)),
        }
    }

    async fn newest_stored(&self, mesh: &str) -> Result<Option<Arc<SigningKey>>, TokenError> {
        let secrets = match self
            .store
            .list(&ListQuery::in_mesh(Kind::Secret, mesh))
            .await
        {
            Ok(list) => list.items,
            Err(StoreError::MeshNotFound(m)) => return Err(TokenError::MeshNotFound(m)),
            Err(e) => return Err(TokenError::Store(e)),
        };
        let prefix = format!("{SIGNING_KEY_PREFIX}{mesh}-");
        let newest = secrets
            .iter()
            .filter_map(|s| {
                let serial = s.meta.name.strip_prefix(&prefix)?.parse::<u64>().ok()?;
                Some((serial, s))
            })
            .max_by_key(|(serial, _)| *serial);
        match newest {
            Some((serial, secret)) => {
                Ok(Some(self.parse_key(mesh, &serial.to_string(), secret)?))
            }
            None => Ok(None),
        }
    }

    /// The key of a stored secret, parsed once per secret version.
    fn parse_key(
        &self,
        mesh: &str,
        kid: &str,
        secret: &Resource,
    ) -> Result<Arc<SigningKey>, TokenError> {
        let cache_key = (mesh.to_string(), secret.meta.name.clone());
        {
            let keys = self
                .keys
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(k) = keys
                .get(&cache_key)
                .filter(|k| k.version == secret.meta.version)
            {
                return Ok(k.clone());
            }
        }
        let bad = || TokenError::BadSigningKey {
            mesh: mesh.to_string(),
            name: secret.meta.name.clone(),
        };
        let Spec::Secret(spec) = &secret.spec else {
            return Err(bad());
        };
        let pem = spec.bytes().ok_or_else(bad)?;
        let encoding = EncodingKey::from_rsa_pem(&pem).map_err(|_| bad())?;
        let decoding = decoding_key(&pem).ok_or_else(bad)?;
        let key = Arc::new(SigningKey {
            kid: kid.to_string(),
            version: secret.meta.version,
            encoding,
            decoding,
        });
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(cache_key, key.clone());
        Ok(key)
    }
}

/// The public half of a PEM RSA private key (PKCS#1 or PKCS#8).
fn decoding_key(pem: &[u8]) -> Option<DecodingKey> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::DecodePrivateKey;
    let text = std::str::from_utf8(pem).ok()?;
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(text)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(text))
        .ok()?;
    let public_pem = private
        .to_public_key()
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .ok()?;
    DecodingKey::from_rsa_pem(public_pem.as_bytes()).ok()
}

/// A new RSA key as PKCS#1 PEM ("RSA PRIVATE KEY"), Kuma's format.
fn generate_pem() -> Result<Vec<u8>, TokenError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
        .map_err(|e| TokenError::KeyGeneration(e.to_string()))?;
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| TokenError::KeyGeneration(e.to_string()))?;
    Ok(pem.as_bytes().to_vec())
}

fn random_id() -> String {
    use rsa::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rsa::rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
