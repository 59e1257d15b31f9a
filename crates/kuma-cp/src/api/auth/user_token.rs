//! User tokens: RS256 JWTs naming a user and its groups, as Kuma issues
//! them. They are signed by the GlobalSecret `user-token-signing-key-<serial>`
//! with the highest serial; the admin user's token is kept as the
//! GlobalSecret `admin-user-token`. Tokens listed (by `jti`) in the
//! GlobalSecret `user-token-revocations` are refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use jsonwebtoken::{Algorithm, Validation};
use kuma_api::kinds::secret::SecretSpec;
use kuma_api::{Kind, Resource, ResourceKey, ResourceMeta, Spec};
use kuma_store::{ResourceStore, StoreError};
use serde::{Deserialize, Serialize};

use super::User;
use crate::tokens::TokenError;
use crate::tokens::signing::{KeyFamily, SigningKeys, random_id};

/// Kuma's prefix of user token signing keys; the serial follows.
pub const SIGNING_KEY_PREFIX: &str = "user-token-signing-key-";
/// The GlobalSecret holding the admin user token.
pub const ADMIN_USER_TOKEN: &str = "admin-user-token";
/// The GlobalSecret listing revoked token ids, comma separated.
pub const REVOCATIONS: &str = "user-token-revocations";
/// Lifetime of the bootstrapped admin token, Kuma's: 10 years.
pub const ADMIN_TOKEN_VALID_FOR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Clock skew tolerated both ways, as Kuma's issuer backdates by it.
const SKEW_SECS: i64 = 5;

/// The claims as Kuma writes them (Go field names, registered claims).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Groups", default)]
    groups: Option<Vec<String>>,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Issues and validates user tokens; cheap to share.
pub struct UserTokens {
    keys: SigningKeys,
    family: KeyFamily,
}

impl UserTokens {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Self {
            keys: SigningKeys::new(store),
            family: KeyFamily::global(SIGNING_KEY_PREFIX),
        }
    }

    /// A signed token for `user`, valid for `valid_for`.
    pub async fn issue(&self, user: &User, valid_for: Duration) -> Result<String, TokenError> {
        let key = self.keys.latest(&self.family).await?;
        let now = Utc::now().timestamp() - SKEW_SECS;
        let valid_for = i64::try_from(valid_for.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            name: user.name.clone(),
            groups: Some(user.groups.clone()),
            jti: random_id(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(valid_for).saturating_add(SKEW_SECS),
        };
        key.sign(&claims)
    }

    /// The user a token names, when it is signed by a known key, current
    /// and not revoked. The message of [`TokenError::Invalid`] is for logs:
    /// clients are only told they are unauthenticated.
    pub async fn validate(&self, token: &str) -> Result<User, TokenError> {
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
        let key = self.keys.by_kid(&self.family, &kid).await?.ok_or_else(|| {
            TokenError::Invalid(format!(
                "there is no signing key with KID {kid}. GlobalSecret {:?} is not found. If signing key was rotated, regenerate the token",
                self.family.name(&kid)
            ))
        })?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_nbf = true;
        validation.leeway = SKEW_SECS as u64;
        validation.set_required_spec_claims(&["exp"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| TokenError::Invalid(format!("token is not valid: {e}")))?
            .claims;
        if self.revoked().await?.contains(&claims.jti) {
            return Err(TokenError::Invalid("token is revoked".into()));
        }
        Ok(User {
            name: claims.name,
            groups: claims.groups.unwrap_or_default(),
        })
    }

    /// Token ids listed in `user-token-revocations`.
    async fn revoked(&self) -> Result<Vec<String>, TokenError> {
        let key = ResourceKey::global(Kind::GlobalSecret, REVOCATIONS);
        let secret = match self.keys.store().get(&key).await {
            Ok(secret) => secret,
            Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(TokenError::Store(e)),
        };
        let bytes = match &secret.spec {
            Spec::GlobalSecret(spec) => spec.bytes().unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok(String::from_utf8_lossy(&bytes)
            .trim_end_matches('\n')
            .split(',')
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect())
    }

    /// Issues the admin user token and keeps it as the GlobalSecret
    /// `admin-user-token`, unless it exists. Returns whether it was created.
    pub async fn bootstrap_admin_token(&self) -> Result<bool, TokenError> {
        let store = self.keys.store();
        let key = ResourceKey::global(Kind::GlobalSecret, ADMIN_USER_TOKEN);
        match store.get(&key).await {
            Ok(_) => return Ok(false),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(TokenError::Store(e)),
        }
        let token = self.issue(&User::admin(), ADMIN_TOKEN_VALID_FOR).await?;
        let now = Utc::now();
        let secret = Resource {
            meta: ResourceMeta {
                mesh: None,
                name: ADMIN_USER_TOKEN.into(),
                labels: BTreeMap::new(),
                creation_time: now,
                modification_time: now,
                version: 0,
            },
            spec: Spec::GlobalSecret(SecretSpec {
                data: Some(base64::engine::general_purpose::STANDARD.encode(token)),
            }),
        };
        match store.create(secret).await {
            Ok(_) => Ok(true),
            // Another control plane on the same store stored one first.
            Err(StoreError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(TokenError::Store(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn mk_tokens() -> (UserTokens, Arc<dyn ResourceStore>) {
        let store: Arc<dyn ResourceStore> =
            Arc::new(kuma_store::SqliteStore::in_memory().await.unwrap());
        (UserTokens::new(store.clone()), store)
    }

    fn mk_user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn payload(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn claims_are_kumas_and_round_trip() {
        let (tokens, store) = mk_tokens().await;
        let john = mk_user("john", &["team-a"]);
        let token = tokens
            .issue(&john, Duration::from_secs(24 * 3600))
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("1"));
        assert_eq!(header.alg, Algorithm::RS256);
        let claims = payload(&token);
        assert_eq!(claims["Name"], "john");
        assert_eq!(claims["Groups"], serde_json::json!(["team-a"]));
        let exp = claims["exp"].as_i64().unwrap();
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(exp - iat, 24 * 3600 + SKEW_SECS);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
        assert_eq!(tokens.validate(&token).await.unwrap(), john);
        // The signing key is the GlobalSecret Kuma names.
        store
            .get(&ResourceKey::global(
                Kind::GlobalSecret,
                "user-token-signing-key-1",
            ))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn expired_foreign_and_garbage_tokens_are_refused() {
        let (tokens, _) = mk_tokens().await;
        let key = tokens.keys.latest(&tokens.family).await.unwrap();
        let now = Utc::now().timestamp();
        let expired = key
            .sign(&Claims {
                name: "john".into(),
                groups: None,
                jti: "x".into(),
                iat: now - 3600,
                nbf: now - 3600,
                exp: now - 60,
            })
            .unwrap();
        let err = tokens.validate(&expired).await.unwrap_err();
        assert!(
            matches!(err, TokenError::Invalid(ref m) if m.contains("xpired")),
            "{err}"
        );

        // Signed by another control plane's key with the same kid.
        let (other, _) = mk_tokens().await;
        let foreign = other
            .issue(&mk_user("john", &[]), Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            tokens.validate(&foreign).await,
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            tokens.validate("not-a-token").await,
            Err(TokenError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn unknown_kid_is_refused() {
        let (tokens, _) = mk_tokens().await;
        let key = tokens.keys.latest(&tokens.family).await.unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("7".into());
        let now = Utc::now().timestamp();
        let claims = Claims {
            name: "john".into(),
            groups: None,
            jti: "x".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
        };
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
        let err = tokens.validate(&token).await.unwrap_err();
        assert!(err.to_string().contains("KID 7"), "{err}");
    }

    #[tokio::test]
    async fn revoked_tokens_are_refused() {
        let (tokens, store) = mk_tokens().await;
        let token = tokens
            .issue(&mk_user("john", &[]), Duration::from_secs(60))
            .await
            .unwrap();
        let jti = payload(&token)["jti"].as_str().unwrap().to_string();
        let now = Utc::now();
        let ids = format!("other,{jti}\n");
        store
            .create(Resource {
                meta: ResourceMeta {
                    mesh: None,
                    name: REVOCATIONS.into(),
                    labels: BTreeMap::new(),
                    creation_time: now,
                    modification_time: now,
                    version: 0,
                },
                spec: Spec::GlobalSecret(SecretSpec {
                    data: Some(base64::engine::general_purpose::STANDARD.encode(ids)),
                }),
            })
            .await
            .unwrap();
        let err = tokens.validate(&token).await.unwrap_err();
        assert_eq!(err.to_string(), "token is revoked");
    }

    #[tokio::test]
    async fn admin_token_is_bootstrapped_once() {
        let (tokens, store) = mk_tokens().await;
        assert!(tokens.bootstrap_admin_token().await.unwrap());
        assert!(!tokens.bootstrap_admin_token().await.unwrap());
        let secret = store
            .get(&ResourceKey::global(Kind::GlobalSecret, ADMIN_USER_TOKEN))
            .await
            .unwrap();
        let Spec::GlobalSecret(spec) = &secret.spec else {
            panic!("not a GlobalSecret")
        };
        let token = String::from_utf8(spec.bytes().unwrap()).unwrap();
        let user = tokens.validate(&token).await.unwrap();
        assert_eq!(user, User::admin());
        assert!(user.is_admin());
    }
}
