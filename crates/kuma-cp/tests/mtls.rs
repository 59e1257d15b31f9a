//! Mesh mTLS through a running control plane: CA problems refused at apply
//! time with field paths (and the running mesh left alone), a proxy on ADS
//! gaining, rotating and losing its identity without reconnecting, and the
//! default allow-all permission. Builtin roots themselves: `mtls_ca.rs`.

use std::time::Duration;

use ads_client::Ads;
use chrono::Utc;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Node, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use kuma_api::{Kind, ResourceKey};
use kuma_ca::{BuiltinCa, BuiltinCaOptions, CertificateAuthority, IdentityRequest, KeyAlgorithm};
use kuma_cp::config::StoreType;
use kuma_xds::type_url;
use prost::Message;
use serde_json::{Value, json};

#[path = "support/ads.rs"]
mod ads_client;
#[path = "support/mtls_cp.rs"]
mod mtls_cp;

use mtls_cp::{Cp, mk_mesh_builtin};

fn mk_mesh_provided(name: &str, cert: Value, key: Value) -> Value {
    json!({"type": "Mesh", "name": name, "mtls": {"enabledBackend": "ca-p", "backends": [
        {"name": "ca-p", "type": "provided", "conf": {"cert": cert, "key": key}}
    ]}})
}

fn mk_dataplane(mesh: &str, name: &str, address: &str, service: &str, to: Option<&str>) -> Value {
    let mut dp = json!({
        "type": "Dataplane", "mesh": mesh, "name": name,
        "networking": {
            "address": address,
            "inbound": [{"port": 8080, "servicePort": 18080,
                         "tags": {"kuma.io/service": service, "kuma.io/protocol": "tcp"}}],
        }
    });
    if let Some(svc) = to {
        dp["networking"]["outbound"] = json!([{"port": 10001, "tags": {"kuma.io/service": svc}}]);
    }
    dp
}

/// A cheap CA for provided-backend tests.
fn mk_ca(valid_from: chrono::DateTime<Utc>, validity: Duration) -> kuma_ca::CaMaterial {
    let options = BuiltinCaOptions {
        key: KeyAlgorithm::EcdsaP256,
        validity,
    };
    BuiltinCa::generate_with("provided", &options, valid_from).unwrap()
}

fn invalid_fields(body: &Value) -> Vec<(String, String)> {
    body["invalid_parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("no invalid_parameters: {body}"))
        .iter()
        .map(|p| {
            (
                p["field"].as_str().unwrap_or_default().to_string(),
                p["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn provided_ca_problems_are_refused_at_apply_time_with_field_paths() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    let now = Utc::now();
    let good = mk_ca(now, Duration::from_secs(3600));
    let other = mk_ca(now, Duration::from_secs(3600));
    let text = |s: &str| json!({"inlineString": s});

    // A good provided CA is accepted, inline or from Secrets.
    cp.put_ok(
        "/meshes/prov",
        mk_mesh_provided("prov", text(&good.cert_pem), text(&good.key_pem)),
    )
    .await;
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    cp.put_ok(
        "/meshes/prov/secrets/ca-cert",
        json!({"type": "Secret", "mesh": "prov", "name": "ca-cert", "data": b64(&good.cert_pem)}),
    )
    .await;
    cp.put_ok(
        "/meshes/prov/secrets/ca-key",
        json!({"type": "Secret", "mesh": "prov", "name": "ca-key", "data": b64(&good.key_pem)}),
    )
    .await;
    cp.put_ok(
        "/meshes/prov",
        mk_mesh_provided(
            "prov",
            json!({"secret": "ca-cert"}),
            json!({"secret": "ca-key"}),
        ),
    )
    .await;
    let cert_file = dir.path().join("ca.pem");
    let key_file = dir.path().join("ca.key");
    std::fs::write(&cert_file, &good.cert_pem).unwrap();
    std::fs::write(&key_file, &good.key_pem).unwrap();
    cp.put_ok(
        "/meshes/prov",
        mk_mesh_provided(
            "prov",
            json!({"file": cert_file}),
            json!({"file": key_file}),
        ),
    )
    .await;
    let accepted = cp
        .cp
        .store()
        .get(&ResourceKey::global(Kind::Mesh, "prov"))
        .await
        .unwrap();

    let expired = mk_ca(
        now - chrono::TimeDelta::days(2),
        Duration::from_secs(24 * 3600),
    );
    let future = mk_ca(now + chrono::TimeDelta::days(1), Duration::from_secs(3600));
    let leaf_tags = [("kuma.io/service".to_string(), ["web".to_string()].into())].into();
    let authority =
        CertificateAuthority::load(good.cert_pem.as_bytes(), good.key_pem.as_bytes(), now).unwrap();
    let leaf = kuma_ca::issue_identity(
        &authority,
        &IdentityRequest {
            mesh: "prov",
            tags: &leaf_tags,
            validity: Duration::from_secs(3600),
            key: KeyAlgorithm::EcdsaP256,
        },
        now,
    )
    .unwrap();
    let cases = [
        (
            "key of another CA",
            mk_mesh_provided("prov", text(&good.cert_pem), text(&other.key_pem)),
            "mtls.backends[0].conf.cert",
            "does not match",
        ),
        (
            "expired",
            mk_mesh_provided("prov", text(&expired.cert_pem), text(&expired.key_pem)),
            "mtls.backends[0].conf.cert[0]",
            "expired",
        ),
        (
            "not valid yet",
            mk_mesh_provided("prov", text(&future.cert_pem), text(&future.key_pem)),
            "mtls.backends[0].conf.cert[0]",
            "is not valid before",
        ),
        (
            "not a CA",
            mk_mesh_provided("prov", text(&leaf.cert_pem), text(&leaf.key_pem)),
            "mtls.backends[0].conf.cert[0]",
            "basic constraint 'CA'",
        ),
        (
            "missing secret",
            mk_mesh_provided(
                "prov",
                json!({"secret": "nope"}),
                json!({"secret": "ca-key"}),
            ),
            "mtls.backends[0].conf.key",
            r#"could not load data: Resource not found: type="Secret" name="nope" mesh="prov""#,
        ),
        (
            "missing file",
            mk_mesh_provided(
                "prov",
                json!({"file": "/nonexistent/ca.pem"}),
                text(&good.key_pem),
            ),
            "mtls.backends[0].conf.cert",
            "could not load data: open /nonexistent/ca.pem",
        ),
        (
            "builtin root with a key size that cannot be generated",
            json!({"type": "Mesh", "name": "prov", "mtls": {"enabledBackend": "ca-1",
                   "backends": [{"name": "ca-1", "type": "builtin",
                                 "conf": {"caCert": {"RSAbits": 1024}}}]}}),
            "mtls.backends[0].conf.caCert.RSAbits",
            "RSA 1024",
        ),
        (
            "enabledBackend names no backend",
            json!({"type": "Mesh", "name": "prov", "mtls": {"enabledBackend": "ca-x",
                   "backends": [{"name": "ca-1", "type": "builtin"}]}}),
            "mtls.enabledBackend",
            "has to be set to one of the backends",
        ),
        (
            "builtin root expired as soon as it is made",
            json!({"type": "Mesh", "name": "prov", "mtls": {"enabledBackend": "ca-1",
                   "backends": [{"name": "ca-1", "type": "builtin",
                                 "conf": {"caCert": {"expiration": "0s"}}}]}}),
            "mtls.backends[0].conf.caCert.expiration",
            "must be at least 1s",
        ),
        (
            "identities renewed as fast as they are issued",
            mk_mesh_builtin("prov", &["ca-1"], "ca-1", "0s"),
            "mtls.backends[0].dpCert.rotation.expiration",
            "must be at least 1s",
        ),
    ];
    for (what, mesh, field, reason) in cases {
        let (status, body) = cp.put("/meshes/prov", mesh).await;
        assert_eq!(status, 400, "{what}: {body}");
        let fields = invalid_fields(&body);
        assert!(
            fields.iter().any(|(f, r)| f == field && r.contains(reason)),
            "{what}: expected {field} ({reason}) in {fields:?}"
        );
    }
    // None of the refused Meshes was written.
    let current = cp
        .cp
        .store()
        .get(&ResourceKey::global(Kind::Mesh, "prov"))
        .await
        .unwrap();
    assert_eq!(current, accepted);
    cp.cp.shutdown().await;
}

/// A delta ADS client subscribed the way Envoy is: clusters and listeners
/// by wildcard, the mesh's two SDS secrets by name.
async fn ads(cp: &Cp, mesh: &str, name: &str) -> Ads {
    try_ads(cp, mesh, name).await.unwrap()
}

async fn try_ads(cp: &Cp, mesh: &str, name: &str) -> Result<Ads, tonic::Status> {
    let token = {
        let r = cp
            .http
            .post(format!("{}/tokens/dataplane", cp.cp.api_url()))
            .json(&json!({"mesh": mesh, "name": name, "validFor": "1h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let node = Node {
        id: format!("{mesh}.{name}"),
        ..Node::default()
    };
    let secrets = vec![
        format!("identity_cert:secret:{mesh}"),
        format!("mesh_ca:secret:{mesh}"),
    ];
    let subscriptions = vec![
        (type_url::CLUSTER, vec!["*".to_string()]),
        (type_url::ENDPOINT, vec!["*".to_string()]),
        (type_url::LISTENER, vec!["*".to_string()]),
        (type_url::SECRET, secrets),
    ];
    ads_client::connect(&cp.cp, node, Some(&token), subscriptions).await
}

impl Ads {
    fn secret(&self, name: &str) -> Option<Secret> {
        let body = self.have.get(type_url::SECRET)?.get(name)?;
        Some(Secret::decode(body.as_slice()).unwrap())
    }

    /// The identity certificate PEM and the trusted CA bundle of `mesh`.
    fn identity(&self, mesh: &str) -> Option<(String, String)> {
        let cert = match self
            .secret(&format!("identity_cert:secret:{mesh}"))?
            .r#type?
        {
            secret::Type::TlsCertificate(t) => inline_text(t.certificate_chain?.specifier?),
            other => panic!("identity secret of another type: {other:?}"),
        };
        let ca = match self.secret(&format!("mesh_ca:secret:{mesh}"))?.r#type? {
            secret::Type::ValidationContext(v) => inline_text(v.trusted_ca?.specifier?),
            other => panic!("CA secret of another type: {other:?}"),
        };
        Some((cert, ca))
    }

    /// Whether the cluster of `service` talks TLS to its endpoints.
    fn cluster_has_tls(&self, service: &str) -> Option<bool> {
        let clusters = self.have.get(type_url::CLUSTER)?;
        let (_, body) = clusters.iter().find(|(name, _)| name.contains(service))?;
        Some(
            Cluster::decode(body.as_slice())
                .unwrap()
                .transport_socket
                .is_some(),
        )
    }
}

fn inline_text(specifier: Specifier) -> String {
    match specifier {
        Specifier::InlineString(s) => s,
        Specifier::InlineBytes(b) => String::from_utf8(b).unwrap(),
        other => panic!("not inline: {other:?}"),
    }
}

#[tokio::test]
async fn a_connected_proxy_gains_and_loses_mtls_without_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    cp.put_ok(
        "/meshes/default/dataplanes/web",
        mk_dataplane("default", "web", "10.0.0.1", "web", Some("backend")),
    )
    .await;
    cp.put_ok(
        "/meshes/default/dataplanes/backend-1",
        mk_dataplane("default", "backend-1", "10.0.0.2", "backend", None),
    )
    .await;
    let mut web = ads(&cp, "default", "web").await;
    web.until("plaintext clusters", Duration::from_secs(10), |a| {
        a.cluster_has_tls("backend") == Some(false)
    })
    .await;
    assert!(web.identity("default").is_none());

    cp.put_ok(
        "/meshes/default",
        mk_mesh_builtin("default", &["ca-1"], "ca-1", ""),
    )
    .await;
    web.until(
        "an identity and TLS clusters",
        Duration::from_secs(20),
        |a| a.identity("default").is_some() && a.cluster_has_tls("backend") == Some(true),
    )
    .await;
    let (cert, ca) = web.identity("default").unwrap();
    // The identity chains to the root stored for the mesh.
    let (root_b64, _) = cp
        .secret_data("default", "default.ca-builtin-cert-ca-1")
        .await
        .unwrap();
    let root =
        String::from_utf8(kuma_api::kinds::secret::decode_base64(&root_b64).unwrap()).unwrap();
    assert_eq!(ca.trim(), root.trim());
    kuma_ca::verify_chain(&cert, &ca, Utc::now()).unwrap();

    cp.put_ok(
        "/meshes/default",
        json!({"type": "Mesh", "name": "default"}),
    )
    .await;
    web.until("plaintext again", Duration::from_secs(10), |a| {
        a.identity("default").is_none() && a.cluster_has_tls("backend") == Some(false)
    })
    .await;
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn identities_rotate_and_follow_a_ca_switch_on_the_same_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    cp.put_ok(
        "/meshes/rot",
        mk_mesh_builtin("rot", &["ca-1"], "ca-1", "2s"),
    )
    .await;
    cp.put_ok(
        "/meshes/rot/dataplanes/web",
        mk_dataplane("rot", "web", "10.0.0.1", "web", None),
    )
    .await;
    let mut web = ads(&cp, "rot", "web").await;
    web.until("an identity", Duration::from_secs(10), |a| {
        a.identity("rot").is_some()
    })
    .await;
    let (first, bundle) = web.identity("rot").unwrap();

    // Renewed at four fifths of two seconds, on the open stream.
    web.until("a renewed identity", Duration::from_secs(10), |a| {
        a.identity("rot").is_some_and(|(cert, _)| cert != first)
    })
    .await;
    let (second, _) = web.identity("rot").unwrap();
    kuma_ca::verify_chain(&second, &bundle, Utc::now()).unwrap();

    // Switching to another backend reissues under its root.
    cp.put_ok(
        "/meshes/rot",
        mk_mesh_builtin("rot", &["ca-2"], "ca-2", "1h"),
    )
    .await;
    let ca2 = {
        let (b64, _) = cp
            .secret_data("rot", "rot.ca-builtin-cert-ca-2")
            .await
            .unwrap();
        String::from_utf8(kuma_api::kinds::secret::decode_base64(&b64).unwrap()).unwrap()
    };
    web.until("an identity from ca-2", Duration::from_secs(10), |a| {
        a.identity("rot")
            .is_some_and(|(cert, _)| kuma_ca::verify_chain(&cert, &ca2, Utc::now()).is_ok())
    })
    .await;
    // With an hour of validity nothing is renewed for a while.
    let (settled, _) = web.identity("rot").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    while web.next(Duration::from_millis(200), None).await.is_some() {}
    assert_eq!(web.identity("rot").unwrap().0, settled);
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn a_mesh_whose_ca_does_not_load_never_serves_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    // skipValidation lets a provided CA whose Secret is missing through.
    let mut mesh = mk_mesh_provided(
        "broken",
        json!({"secret": "missing-cert"}),
        json!({"secret": "missing-key"}),
    );
    mesh["mtls"]["skipValidation"] = json!(true);
    cp.put_ok("/meshes/broken", mesh).await;
    cp.put_ok(
        "/meshes/broken/dataplanes/web",
        mk_dataplane("broken", "web", "10.0.0.1", "web", None),
    )
    .await;
    // The stream is refused rather than given a config without mTLS.
    let status = try_ads(&cp, "broken", "web").await.err().expect("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");
    assert!(status.message().contains("mTLS identity"), "{status}");

    // Once the Secrets appear the CA loads and the proxy gets its identity.
    let ca = mk_ca(Utc::now(), Duration::from_secs(3600));
    for (name, pem) in [("missing-cert", &ca.cert_pem), ("missing-key", &ca.key_pem)] {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        cp.put_ok(
            &format!("/meshes/broken/secrets/{name}"),
            json!({"type": "Secret", "mesh": "broken", "name": name, "data": data}),
        )
        .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut web = loop {
        match try_ads(&cp, "broken", "web").await {
            Ok(web) => break web,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "still refused: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    web.until("an identity", Duration::from_secs(10), |a| {
        a.identity("broken").is_some()
    })
    .await;
    let (cert, _) = web.identity("broken").unwrap();
    kuma_ca::verify_chain(&cert, &ca.cert_pem, Utc::now()).unwrap();
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn a_new_mesh_gets_an_allow_all_permission_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    let get = |path: String| {
        let http = cp.http.clone();
        let url = format!("{}{path}", cp.cp.api_url());
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // The default Mesh made at start has it too.
    let (status, body) =
        get("/meshes/default/meshtrafficpermissions/allow-all-default".into()).await;
    assert_eq!(status, 200, "{body}");

    cp.put_ok("/meshes/open", json!({"type": "Mesh", "name": "open"}))
        .await;
    let (status, mtp) = get("/meshes/open/meshtrafficpermissions/allow-all-open".into()).await;
    assert_eq!(status, 200, "{mtp}");
    assert_eq!(mtp["spec"]["targetRef"], json!({"kind": "Mesh"}));
    assert_eq!(
        mtp["spec"]["from"],
        json!([{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}])
    );

    // Deny by default: skip the permission (the other defaults stay).
    cp.put_ok(
        "/meshes/closed",
        json!({"type": "Mesh", "name": "closed",
               "skipCreatingInitialPolicies": ["MeshTrafficPermission"]}),
    )
    .await;
    let (_, mtps) = get("/meshes/closed/meshtrafficpermissions".into()).await;
    assert_eq!(mtps["total"], 0, "{mtps}");
    let (_, retries) = get("/meshes/closed/meshretries".into()).await;
    assert_eq!(retries["total"], 1, "{retries}");

    cp.put_ok(
        "/meshes/bare",
        json!({"type": "Mesh", "name": "bare", "skipCreatingInitialPolicies": ["*"]}),
    )
    .await;
    let (_, mtps) = get("/meshes/bare/meshtrafficpermissions".into()).await;
    assert_eq!(mtps["total"], 0, "{mtps}");

    // Only a new Mesh gets it: a deleted default stays deleted across updates.
    let r = cp
        .http
        .delete(format!(
            "{}/meshes/open/meshtrafficpermissions/allow-all-open",
            cp.cp.api_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    cp.put_ok(
        "/meshes/open",
        json!({"type": "Mesh", "name": "open", "labels": {"team": "a"}}),
    )
    .await;
    let (_, mtps) = get("/meshes/open/meshtrafficpermissions".into()).await;
    assert_eq!(mtps["total"], 0, "{mtps}");
    cp.cp.shutdown().await;
}

#[tokio::test]
async fn a_refused_mesh_update_leaves_the_running_mesh_and_its_proxies_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cp = Cp::start(dir.path(), StoreType::Memory).await;
    cp.put_ok(
        "/meshes/live",
        mk_mesh_builtin("live", &["ca-1"], "ca-1", "1h"),
    )
    .await;
    cp.put_ok(
        "/meshes/live/dataplanes/web",
        mk_dataplane("live", "web", "10.0.0.1", "web", Some("backend")),
    )
    .await;
    cp.put_ok(
        "/meshes/live/dataplanes/backend-1",
        mk_dataplane("live", "backend-1", "10.0.0.2", "backend", None),
    )
    .await;
    let mut web = ads(&cp, "live", "web").await;
    web.until(
        "an identity and TLS clusters",
        Duration::from_secs(20),
        |a| a.identity("live").is_some() && a.cluster_has_tls("backend") == Some(true),
    )
    .await;
    // Let the initial burst settle before taking the reference.
    while web.next(Duration::from_millis(500), None).await.is_some() {}
    let before = web.have.clone();
    let mesh_key = ResourceKey::global(Kind::Mesh, "live");
    let stored = cp.cp.store().get(&mesh_key).await.unwrap();

    let now = Utc::now();
    let good = mk_ca(now, Duration::from_secs(3600));
    let other = mk_ca(now, Duration::from_secs(3600));
    let expired = mk_ca(now - chrono::TimeDelta::days(2), Duration::from_secs(3600));
    let future = mk_ca(now + chrono::TimeDelta::days(1), Duration::from_secs(3600));
    let text = |s: &str| json!({"inlineString": s});
    let provided = |cert: &str, key: &str| mk_mesh_provided("live", text(cert), text(key));
    let bad = [
        (
            "enabledBackend names no backend",
            mk_mesh_builtin("live", &["ca-1"], "ca-9", "1h"),
            "mtls.enabledBackend",
        ),
        (
            "key of another CA",
            provided(&good.cert_pem, &other.key_pem),
            "mtls.backends[0].conf.cert",
        ),
        (
            "expired CA",
            provided(&expired.cert_pem, &expired.key_pem),
            "mtls.backends[0].conf.cert[0]",
        ),
        (
            "CA not valid yet",
            provided(&future.cert_pem, &future.key_pem),
            "mtls.backends[0].conf.cert[0]",
        ),
    ];
    for (what, mesh, field) in bad {
        let (status, body) = cp.put("/meshes/live", mesh).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            invalid_fields(&body).iter().any(|(f, _)| f == field),
            "{what}: expected {field} in {body}"
        );
    }
    assert_eq!(cp.cp.store().get(&mesh_key).await.unwrap(), stored);

    // A permission with an invalid targetRef is refused too, and the
    // mesh's allow-all stays as it was.
    let mtp_key = ResourceKey::in_mesh(Kind::MeshTrafficPermission, "live", "allow-all-live");
    let mtp = cp.cp.store().get(&mtp_key).await.unwrap();
    let bad_targets = [
        (
            json!({"kind": "MeshGateway", "name": "gw"}),
            "spec.targetRef.kind",
        ),
        (json!({"kind": "MeshService"}), "spec.targetRef"),
    ];
    for (target, field) in bad_targets {
        let (status, body) = cp
            .put(
                "/meshes/live/meshtrafficpermissions/allow-all-live",
                json!({"type": "MeshTrafficPermission", "mesh": "live", "name": "allow-all-live",
                       "spec": {"targetRef": target,
                                "from": [{"targetRef": {"kind": "Mesh"},
                                          "default": {"action": "Deny"}}]}}),
            )
            .await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(
            invalid_fields(&body).iter().any(|(f, _)| f == field),
            "{target}: expected {field} in {body}"
        );
    }
    assert_eq!(cp.cp.store().get(&mtp_key).await.unwrap(), mtp);
    // The proxy is sent nothing: same identity, same clusters, same listeners.
    if let Some(update) = web.next(Duration::from_secs(2), None).await {
        panic!("a refused update reached the proxy: {update:?}");
    }
    assert_eq!(web.have, before);

    // The mesh still works: a proxy connecting now gets an identity from the same root.
    let mut backend = ads(&cp, "live", "backend-1").await;
    backend
        .until("backend's identity", Duration::from_secs(20), |a| {
            a.identity("live").is_some()
        })
        .await;
    let (cert, _) = backend.identity("live").unwrap();
    let (_, bundle) = web.identity("live").unwrap();
    kuma_ca::verify_chain(&cert, &bundle, Utc::now()).unwrap();
    cp.cp.shutdown().await;
}
