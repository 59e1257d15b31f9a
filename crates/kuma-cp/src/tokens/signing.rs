//! RSA signing keys kept in the store, shared by dataplane tokens (a Secret
//! per mesh) and user tokens (GlobalSecrets). A key family is a name prefix;
//! the serial after it is the key id (`kid`) and the highest serial signs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use kuma_api::kinds::secret::SecretSpec;
use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec};
use kuma_store::{ListQuery, ResourceStore, StoreError};
use serde::Serialize;

use super::TokenError;

/// The serial of a family's first key (Kuma's default key id).
pub const DEFAULT_KEY_ID: &str = "1";
const RSA_BITS: usize = 2048;

/// One parsed key, tagged with the store version it came from.
pub struct SigningKey {
    pub kid: String,
    pub version: u64,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

impl SigningKey {
    /// An RS256 JWT of `claims`, with this key's id in the header.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(TokenError::Sign)
    }
}

/// Where a family of keys lives: a mesh's Secrets or the GlobalSecrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyFamily {
    mesh: Option<String>,
    prefix: String,
}

impl KeyFamily {
    /// Secrets `<prefix><serial>` in `mesh`.
    pub fn in_mesh(mesh: &str, prefix: String) -> Self {
        Self {
            mesh: Some(mesh.to_string()),
            prefix,
        }
    }

    /// GlobalSecrets `<prefix><serial>`.
    pub fn global(prefix: &str) -> Self {
        Self {
            mesh: None,
            prefix: prefix.to_string(),
        }
    }

    pub fn name(&self, kid: &str) -> String {
        format!("{}{kid}", self.prefix)
    }

    pub fn resource_key(&self, kid: &str) -> ResourceKey {
        match &self.mesh {
            Some(mesh) => ResourceKey::in_mesh(Kind::Secret, mesh, &self.name(kid)),
            None => ResourceKey::global(Kind::GlobalSecret, &self.name(kid)),
        }
    }

    fn mesh_label(&self) -> &str {
        self.mesh.as_deref().unwrap_or_default()
    }
}

/// Parsed keys by (family, secret name), with the secret data each was
/// parsed from.
type ParsedKeys = HashMap<(KeyFamily, String), (String, Arc<SigningKey>)>;

/// Loads, creates and caches signing keys; cheap to share.
pub struct SigningKeys {
    store: Arc<dyn ResourceStore>,
    cache: Mutex<ParsedKeys>,
}

impl SigningKeys {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Self {
            store,
            cache: Mutex::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn ResourceStore> {
        &self.store
    }

    /// The family's newest key, created (serial 1) when it has none.
    pub async fn latest(&self, family: &KeyFamily) -> Result<Arc<SigningKey>, TokenError> {
        if let Some(found) = self.newest_stored(family).await? {
            return Ok(found);
        }
        let pem = tokio::task::spawn_blocking(generate_pem)
            .await
            .map_err(|e| TokenError::KeyGeneration(e.to_string()))??;
        let key = family.resource_key(DEFAULT_KEY_ID);
        let now = Utc::now();
        let spec = SecretSpec {
            data: Some(base64::engine::general_purpose::STANDARD.encode(pem)),
        };
        let secret = Resource {
            meta: ResourceMeta {
                mesh: key.mesh.clone(),
                name: key.name.clone(),
                labels: BTreeMap::new(),
                creation_time: now,
                modification_time: now,
                version: 0,
            },
            spec: match family.mesh {
                Some(_) => Spec::Secret(spec),
                None => Spec::GlobalSecret(spec),
            },
        };
        match self.store.create(secret).await {
            Ok(created) => {
                tracing::info!(mesh = family.mesh_label(), secret = %key.name, "created a token signing key");
                self.parse(family, DEFAULT_KEY_ID, &created)
            }
            // Another request or control plane created it first: use theirs.
            Err(StoreError::AlreadyExists(_)) => self
                .newest_stored(family)
                .await?
                .ok_or_else(|| TokenError::Store(StoreError::NotFound(key))),
            Err(StoreError::MeshNotFound(m)) => Err(TokenError::MeshNotFound(m)),
            Err(e) => Err(TokenError::Store(e)),
        }
    }

    /// The stored key with the highest serial, if any.
    pub async fn newest_stored(
        &self,
        family: &KeyFamily,
    ) -> Result<Option<Arc<SigningKey>>, TokenError> {
        let query = match &family.mesh {
            Some(mesh) => ListQuery::in_mesh(Kind::Secret, mesh),
            None => ListQuery::all(Kind::GlobalSecret),
        };
        let secrets = match self.store.list(&query).await {
            Ok(list) => list.items,
            Err(StoreError::MeshNotFound(m)) => return Err(TokenError::MeshNotFound(m)),
            Err(e) => return Err(TokenError::Store(e)),
        };
        let newest = secrets
            .iter()
            .filter_map(|s| {
                let serial = s
                    .meta
                    .name
                    .strip_prefix(&family.prefix)?
                    .parse::<u64>()
                    .ok()?;
                Some((serial, s))
            })
            .max_by_key(|(serial, _)| *serial);
        match newest {
            Some((serial, secret)) => Ok(Some(self.parse(family, &serial.to_string(), secret)?)),
            None => Ok(None),
        }
    }

    /// The key of id `kid`; `None` when there is no such secret.
    pub async fn by_kid(
        &self,
        family: &KeyFamily,
        kid: &str,
    ) -> Result<Option<Arc<SigningKey>>, TokenError> {
        match self.store.get(&family.resource_key(kid)).await {
            Ok(secret) => Ok(Some(self.parse(family, kid, &secret)?)),
            Err(StoreError::NotFound(_) | StoreError::MeshNotFound(_)) => Ok(None),
            Err(e) => Err(TokenError::Store(e)),
        }
    }

    /// The key of a stored secret, parsed once per secret content (the
    /// version alone could repeat: a key deleted and created again starts
    /// over at version 1).
    pub fn parse(
        &self,
        family: &KeyFamily,
        kid: &str,
        secret: &Resource,
    ) -> Result<Arc<SigningKey>, TokenError> {
        let cache_key = (family.clone(), secret.meta.name.clone());
        let bad = || TokenError::BadSigningKey {
            mesh: family.mesh_label().to_string(),
            name: secret.meta.name.clone(),
        };
        let (Spec::Secret(spec) | Spec::GlobalSecret(spec)) = &secret.spec else {
            return Err(bad());
        };
        let data = spec.data.clone().unwrap_or_default();
        {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, k)) = cache.get(&cache_key).filter(|(d, _)| *d == data) {
                return Ok(k.clone());
            }
        }
        let pem = spec.bytes().ok_or_else(bad)?;
        let encoding = EncodingKey::from_rsa_pem(&pem).map_err(|_| bad())?;
        let decoding = decoding_key(&pem).ok_or_else(bad)?;
        let key = Arc::new(SigningKey {
            kid: kid.to_string(),
            version: secret.meta.version,
            encoding,
            decoding,
        });
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(cache_key, (data, key.clone()));
        Ok(key)
    }
}

/// The public half of a PEM RSA private key (PKCS#1 or PKCS#8).
pub fn decoding_key(pem: &[u8]) -> Option<DecodingKey> {
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
pub fn generate_pem() -> Result<Vec<u8>, TokenError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
        .map_err(|e| TokenError::KeyGeneration(e.to_string()))?;
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| TokenError::KeyGeneration(e.to_string()))?;
    Ok(pem.as_bytes().to_vec())
}

/// A random token id (`jti`), 128 bits as hex.
pub fn random_id() -> String {
    use rsa::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rsa::rand_core::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use kuma_store::SqliteStore;

    fn mk_secret(name: &str, version: u64, pem: &[u8]) -> Resource {
        Resource {
            meta: ResourceMeta {
                mesh: Some("default".to_string()),
                name: name.to_string(),
                labels: BTreeMap::new(),
                creation_time: Utc::now(),
                modification_time: Utc::now(),
                version,
            },
            spec: Spec::Secret(SecretSpec {
                data: Some(base64::engine::general_purpose::STANDARD.encode(pem)),
            }),
        }
    }

    #[tokio::test]
    async fn a_key_created_again_under_the_same_name_and_version_is_parsed_again() {
        let store: Arc<dyn ResourceStore> =
            Arc::new(SqliteStore::in_memory().await.expect("store"));
        let keys = SigningKeys::new(store);
        let family = KeyFamily::in_mesh("default", "dataplane-token-signing-key".to_string());
        let name = "dataplane-token-signing-key-default-1";
        let first = generate_pem().expect("a key");
        let second = generate_pem().expect("another key");
        let a = keys
            .parse(&family, "1", &mk_secret(name, 1, &first))
            .expect("parses");
        let again = keys
            .parse(&family, "1", &mk_secret(name, 1, &first))
            .expect("parses");
        assert!(Arc::ptr_eq(&a, &again), "the same content is parsed once");
        let b = keys
            .parse(&family, "1", &mk_secret(name, 1, &second))
            .expect("parses");
        assert!(!Arc::ptr_eq(&a, &b), "new content under an old version");
        let token = b
            .sign(&serde_json::json!({"exp": 4_000_000_000u64}))
            .expect("signs");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&token, &b.decoding, &validation).is_ok()
        );
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&token, &a.decoding, &validation).is_err()
        );
    }
}
