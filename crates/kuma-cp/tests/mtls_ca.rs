//! Builtin CA roots through a running control plane: made once from the
//! backend's `conf.caCert`, kept in Secrets and reused after a restart, and
//! one root when replicas race to make it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Timelike, Utc};
use kuma_api::kinds::mesh::CaBackend;
use kuma_ca::CertificateAuthority;
use kuma_cp::config::StoreType;
use kuma_store::ResourceStore;
use serde_json::json;

#[path = "support/mtls_cp.rs"]
mod mtls_cp;

use mtls_cp::{Cp, mk_mesh_builtin};

#[tokio::test]
async fn builtin_ca_secrets_are_created_once_and_reused_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cert_name = "secure.ca-builtin-cert-ca-1";
    let key_name = "secure.ca-builtin-key-ca-1";
    let first = {
        let cp = Cp::start(dir.path(), StoreType::Embedded).await;
        cp.put_ok(
            "/meshes/secure",
            mk_mesh_builtin("secure", &["ca-1"], "ca-1", ""),
        )
        .await;
        // The PUT returns once the root exists.
        let cert = cp
            .secret_data("secure", cert_name)
            .await
            .expect("cert secret");
        let key = cp
            .secret_data("secure", key_name)
            .await
            .expect("key secret");
        // Applying the same Mesh again keeps the root.
        cp.put_ok(
            "/meshes/secure",
            mk_mesh_builtin("secure", &["ca-1"], "ca-1", ""),
        )
        .await;
        assert_eq!(
            cp.secret_data("secure", cert_name).await,
            Some(cert.clone())
        );
        cp.cp.shutdown().await;
        (cert, key)
    };
    let cp = Cp::start(dir.path(), StoreType::Embedded).await;
    // Give the index's reload a moment; it must not replace the root.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cp.secret_data("secure", cert_name).await, Some(first.0));
    assert_eq!(cp.secret_data("secure", key_name).await, Some(first.1));
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn builtin_ca_key_size_and_expiration_come_from_conf_ca_cert() {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;

    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    let before = Utc::now();
    cp.put_ok(
        "/meshes/sized",
        json!({"type": "Mesh", "name": "sized", "mtls": {"enabledBackend": "ca-1", "backends": [
            {"name": "ca-1", "type": "builtin",
             "conf": {"caCert": {"RSAbits": 3072, "expiration": "2y"}}},
        ]}}),
    )
    .await;
    let pem = |name: &'static str| {
        let cp = &cp;
        async move {
            let (b64, _) = cp.secret_data("sized", name).await.expect(name);
            String::from_utf8(kuma_api::kinds::secret::decode_base64(&b64).unwrap()).unwrap()
        }
    };
    let cert = pem("sized.ca-builtin-cert-ca-1").await;
    let key = pem("sized.ca-builtin-key-ca-1").await;
    // Kuma's builtin roots: an RSA key of RSAbits, stored as PKCS#1.
    let private = rsa::RsaPrivateKey::from_pkcs1_pem(&key).expect("PKCS#1 RSA key");
    assert_eq!(private.n().bits(), 3072);
    // The certificate matches that key, and lives `expiration` (plus the
    // clock-skew allowance before its start).
    let ca = CertificateAuthority::load(cert.as_bytes(), key.as_bytes(), Utc::now()).unwrap();
    let two_years = chrono::TimeDelta::days(2 * 365);
    assert_eq!(
        ca.not_after() - ca.not_before(),
        two_years + kuma_ca::ALLOWED_CLOCK_SKEW
    );
    assert!(ca.not_after() >= before.with_nanosecond(0).unwrap() + two_years);
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn replicas_racing_to_create_a_root_end_up_with_one() {
    let store: Arc<dyn ResourceStore> =
        Arc::new(kuma_store::SqliteStore::in_memory().await.unwrap());
    kuma_cp::defaults::ensure_default_mesh(store.as_ref())
        .await
        .unwrap();
    let backend: CaBackend =
        serde_json::from_value(json!({"name": "ca-1", "type": "builtin"})).unwrap();
    let now = Utc::now();
    let (a, b, c) = tokio::join!(
        kuma_cp::mtls::ensure_builtin(store.as_ref(), "default", &backend, now),
        kuma_cp::mtls::ensure_builtin(store.as_ref(), "default", &backend, now),
        kuma_cp::mtls::ensure_builtin(store.as_ref(), "default", &backend, now),
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a, b);
    assert_eq!(b, c);
    // What they agree on is what is stored, and it is a working CA.
    let again = kuma_cp::mtls::ensure_builtin(store.as_ref(), "default", &backend, now)
        .await
        .unwrap();
    assert_eq!(again, a);
    CertificateAuthority::load(a.cert_pem.as_bytes(), a.key_pem.as_bytes(), now).unwrap();
}
