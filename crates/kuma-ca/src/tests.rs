//! Whole flows: generate a root, store and reload it, issue identities,
//! verify them, and refuse broken provided CAs.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use kuma_api::kind::Kind;
use kuma_api::kinds::mesh::{BuiltinCaConfig, CaBackend, CaCert, DpCert, Rotation};
use kuma_api::kinds::secret::SecretSpec;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::*;

fn mk_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

fn mk_ecdsa_ca(mesh: &str, now: DateTime<Utc>) -> CaMaterial {
    let options = BuiltinCaOptions {
        key: KeyAlgorithm::EcdsaP256,
        validity: DEFAULT_CA_VALIDITY,
    };
    BuiltinCa::generate_with(mesh, &options, now).unwrap()
}

fn mk_tags(pairs: &[(&str, &str)]) -> TagSet {
    let mut tags = TagSet::new();
    for (key, value) in pairs {
        tags.entry(key.to_string())
            .or_default()
            .insert(value.to_string());
    }
    tags
}

fn mk_request<'a>(mesh: &'a str, tags: &'a TagSet) -> IdentityRequest<'a> {
    IdentityRequest {
        mesh,
        tags,
        validity: Duration::from_secs(24 * 3600),
        key: KeyAlgorithm::EcdsaP256,
    }
}

fn load(material: &CaMaterial, now: DateTime<Utc>) -> Result<CertificateAuthority> {
    CertificateAuthority::load(
        material.cert_pem.as_bytes(),
        material.key_pem.as_bytes(),
        now,
    )
}

fn der_of(pem: &str) -> Vec<u8> {
    authority_ders(pem).remove(0)
}

fn authority_ders(pem: &str) -> Vec<Vec<u8>> {
    crate::authority::parse_certificates(pem.as_bytes())
        .unwrap()
        .into_iter()
        .map(|d| d.to_vec())
        .collect()
}

fn uris(cert: &X509Certificate<'_>) -> Vec<String> {
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::URI(uri) => uri.to_string(),
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

#[test]
fn builtin_root_has_kumas_subject_and_constraints() {
    let now = mk_now();
    let material = mk_ecdsa_ca("default", now);
    let der = der_of(&material.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();

    assert_eq!(cert.subject().to_string(), "O=Kuma, OU=Mesh, CN=default");
    assert_eq!(cert.issuer(), cert.subject());
    assert_eq!(uris(&cert), ["spiffe://default"]);
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert!(!ku.digital_signature() && !ku.key_agreement());
    assert_eq!(cert.validity().not_before.timestamp(), now.timestamp() - 10);
    assert_eq!(
        cert.validity().not_after.timestamp(),
        now.timestamp() + 10 * 365 * 24 * 3600
    );
    assert!(cert.raw_serial().first().is_some_and(|b| b & 0x80 == 0));
    assert!(cert.raw_serial().iter().any(|b| *b != 0));
    // Self-signed: its own key verifies its signature.
    cert.verify_signature(None).unwrap();
}

#[test]
fn builtin_conf_sets_expiration_and_rejects_bad_values() {
    let conf = BuiltinCaConfig {
        ca_cert: Some(CaCert {
            rsa_bits: Some(4096),
            expiration: "1y".to_string(),
        }),
    };
    let options = BuiltinCaOptions::from_conf(&conf).unwrap();
    assert_eq!(options.key, KeyAlgorithm::Rsa { bits: 4096 });
    assert_eq!(options.validity, Duration::from_secs(365 * 24 * 3600));

    let defaults = BuiltinCaOptions::from_conf(&BuiltinCaConfig::default()).unwrap();
    assert_eq!(defaults, BuiltinCaOptions::default());
    assert_eq!(defaults.key, KeyAlgorithm::Rsa { bits: 2048 });

    let too_small = BuiltinCaConfig {
        ca_cert: Some(CaCert {
            rsa_bits: Some(1024),
            expiration: String::new(),
        }),
    };
    let err = BuiltinCaOptions::from_conf(&too_small).unwrap_err();
    assert!(matches!(
        err,
        CaError::InvalidConfig {
            field: "conf.caCert.RSAbits",
            ..
        }
    ));
    let bad_duration = BuiltinCaConfig {
        ca_cert: Some(CaCert {
            rsa_bits: None,
            expiration: "soon".to_string(),
        }),
    };
    assert!(matches!(
        BuiltinCaOptions::from_conf(&bad_duration),
        Err(CaError::InvalidConfig {
            field: "conf.caCert.expiration",
            ..
        })
    ));
    // A root expired as soon as it is made is refused, not generated.
    let zero = BuiltinCaConfig {
        ca_cert: Some(CaCert {
            rsa_bits: None,
            expiration: "0s".to_string(),
        }),
    };
    let err = BuiltinCaOptions::from_conf(&zero).unwrap_err();
    assert!(
        matches!(&err, CaError::InvalidConfig { field: "conf.caCert.expiration", reason }
            if reason == "must be at least 1s"),
        "{err}"
    );
}

#[test]
fn mesh_names_that_are_no_trust_domain_are_refused() {
    let options = BuiltinCaOptions {
        key: KeyAlgorithm::EcdsaP256,
        validity: DEFAULT_CA_VALIDITY,
    };
    let err = BuiltinCa::generate_with("Bad Mesh", &options, mk_now()).unwrap_err();
    assert!(matches!(err, CaError::InvalidSpiffeId { .. }), "{err}");
}

#[test]
fn identity_carries_spiffe_and_kuma_sans_and_leaf_constraints() {
    let now = mk_now();
    let material = mk_ecdsa_ca("demo", now);
    let ca = load(&material, now).unwrap();
    let tags = mk_tags(&[
        ("kuma.io/service", "web"),
        ("kuma.io/service", "web-admin"),
        ("kuma.io/protocol", "http"),
        ("version", "v2"),
    ]);
    let issued = issue_identity(&ca, &mk_request("demo", &tags), now).unwrap();

    verify_chain(&issued.cert_pem, ca.cert_pem(), now).unwrap();

    let der = der_of(&issued.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        uris(&cert),
        [
            "spiffe://demo/web",
            "spiffe://demo/web-admin",
            "kuma://kuma.io/protocol/http",
            "kuma://kuma.io/service/web",
            "kuma://kuma.io/service/web-admin",
            "kuma://version/v2",
        ]
    );
    // No subject, so the SAN extension must be critical (RFC 5280 4.2.1.6).
    assert!(cert.subject().iter().next().is_none());
    assert!(cert.subject_alternative_name().unwrap().unwrap().critical);
    assert_eq!(cert.issuer().to_string(), "O=Kuma, OU=Mesh, CN=demo");

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && ku.key_agreement());
    assert!(!ku.key_cert_sign());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    assert_eq!(issued.issued_at, now);
    assert_eq!(issued.not_before, now - TimeDelta::seconds(10));
    assert_eq!(issued.not_after, now + TimeDelta::hours(24));
    assert_eq!(
        cert.validity().not_before.timestamp(),
        issued.not_before.timestamp()
    );
    assert_eq!(
        cert.validity().not_after.timestamp(),
        issued.not_after.timestamp()
    );

    // The leaf key is the one the certificate names.
    let key = KeyPair::from_pem(&issued.key_pem).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
}

#[test]
fn chain_verification_fails_outside_the_window_and_with_another_ca() {
    let now = mk_now();
    let ca = load(&mk_ecdsa_ca("demo", now), now).unwrap();
    let other = load(&mk_ecdsa_ca("demo", now), now).unwrap();
    let tags = mk_tags(&[("kuma.io/service", "web")]);
    let issued = issue_identity(&ca, &mk_request("demo", &tags), now).unwrap();

    verify_chain(&issued.cert_pem, ca.cert_pem(), now - TimeDelta::seconds(5)).unwrap();
    for (ca_pem, at) in [
        (other.cert_pem(), now),
        (ca.cert_pem(), now + TimeDelta::hours(25)),
        (ca.cert_pem(), now - TimeDelta::seconds(11)),
    ] {
        let err = verify_chain(&issued.cert_pem, ca_pem, at).unwrap_err();
        assert!(matches!(err, CaError::ChainInvalid { .. }), "{err}");
    }
    // Both CAs trusted at once, as during a CA rotation: verifies.
    let bundle = format!("{}{}", other.cert_pem(), ca.cert_pem());
    verify_chain(&issued.cert_pem, &bundle, now).unwrap();
}

#[test]
fn identity_needs_a_service_and_clean_tags() {
    let now = mk_now();
    let ca = load(&mk_ecdsa_ca("demo", now), now).unwrap();
    let no_service = mk_tags(&[("version", "v1")]);
    assert!(matches!(
        issue_identity(&ca, &mk_request("demo", &no_service), now),
        Err(CaError::NoService)
    ));
    let spaced = mk_tags(&[("kuma.io/service", "web"), ("team", "a b")]);
    assert!(matches!(
        issue_identity(&ca, &mk_request("demo", &spaced), now),
        Err(CaError::InvalidTag { .. })
    ));
    let slashed = mk_tags(&[("kuma.io/service", "web/v1")]);
    assert!(matches!(
        issue_identity(&ca, &mk_request("demo", &slashed), now),
        Err(CaError::InvalidSpiffeId { .. })
    ));
}

#[test]
fn rotation_happens_after_four_fifths_of_the_lifetime() {
    let issued = mk_now();
    let not_after = issued + TimeDelta::seconds(100);
    assert!(!needs_rotation(issued, not_after, issued));
    assert!(!needs_rotation(
        issued,
        not_after,
        issued + TimeDelta::seconds(80)
    ));
    assert!(needs_rotation(
        issued,
        not_after,
        issued + TimeDelta::seconds(80) + TimeDelta::milliseconds(1)
    ));
    assert!(needs_rotation(
        issued,
        not_after,
        not_after + TimeDelta::hours(1)
    ));

    let day = issued + TimeDelta::hours(24);
    assert_eq!(
        rotation_time(issued, day),
        issued + TimeDelta::minutes(1152)
    );
    assert!(!needs_rotation(issued, day, issued + TimeDelta::hours(19)));
    assert!(needs_rotation(issued, day, issued + TimeDelta::hours(20)));
}

#[test]
fn issued_identity_knows_when_to_rotate() {
    let now = mk_now();
    let ca = load(&mk_ecdsa_ca("demo", now), now).unwrap();
    let tags = mk_tags(&[("kuma.io/service", "web")]);
    let issued = issue_identity(&ca, &mk_request("demo", &tags), now).unwrap();
    assert!(!issued.needs_rotation(now + TimeDelta::hours(19)));
    assert!(issued.needs_rotation(now + TimeDelta::hours(20)));
}

#[test]
fn an_identity_never_outlives_its_ca() {
    let now = mk_now();
    let options = BuiltinCaOptions {
        key: KeyAlgorithm::EcdsaP256,
        validity: Duration::from_secs(3600),
    };
    let material = BuiltinCa::generate_with("demo", &options, now).unwrap();
    let ca = load(&material, now).unwrap();
    let tags = mk_tags(&[("kuma.io/service", "web")]);
    // A day asked for, ten minutes of CA left: ten minutes given, renewed
    // at four fifths of them.
    let late = ca.not_after() - TimeDelta::minutes(10);
    let issued = issue_identity(&ca, &mk_request("demo", &tags), late).unwrap();
    assert_eq!(issued.not_after, ca.not_after());
    assert!(!issued.needs_rotation(late + TimeDelta::minutes(7)));
    assert!(issued.needs_rotation(late + TimeDelta::minutes(9)));
    verify_chain(&issued.cert_pem, ca.cert_pem(), late).unwrap();

    let gone = issue_identity(&ca, &mk_request("demo", &tags), ca.not_after()).unwrap_err();
    assert!(matches!(gone, CaError::Expired { .. }), "{gone}");
}

#[test]
fn dp_cert_expiration_comes_from_the_backend() {
    let mut backend = CaBackend::default();
    assert_eq!(
        identity_validity(&backend).unwrap(),
        DEFAULT_IDENTITY_VALIDITY
    );
    backend.dp_cert = Some(DpCert {
        rotation: Some(Rotation {
            expiration: "1d".to_string(),
        }),
        request_timeout: None,
    });
    assert_eq!(
        identity_validity(&backend).unwrap(),
        Duration::from_secs(24 * 3600)
    );
    backend.dp_cert = Some(DpCert {
        rotation: Some(Rotation {
            expiration: "often".to_string(),
        }),
        request_timeout: None,
    });
    assert!(identity_validity(&backend).is_err());

    // Zero (or sub-second) lifetimes would be renewed as fast as issued.
    for short in ["0", "0s", "500ms"] {
        backend.dp_cert = Some(DpCert {
            rotation: Some(Rotation {
                expiration: short.to_string(),
            }),
            request_timeout: None,
        });
        let err = identity_validity(&backend).unwrap_err();
        assert!(
            matches!(&err, CaError::InvalidConfig { field: "dpCert.rotation.expiration", reason }
                if reason == "must be at least 1s"),
            "{short}: {err}"
        );
    }
    backend.dp_cert = Some(DpCert {
        rotation: Some(Rotation {
            expiration: "1s".to_string(),
        }),
        request_timeout: None,
    });
    assert_eq!(identity_validity(&backend).unwrap(), MIN_LIFETIME);
}

#[test]
fn material_round_trips_through_secrets() {
    let material = mk_ecdsa_ca("default", mk_now());
    let [cert, key] = material.to_secrets("default", "ca-1");
    assert_eq!(cert.key.kind, Kind::Secret);
    assert_eq!(cert.key.mesh.as_deref(), Some("default"));
    assert_eq!(cert.key.name, "default.ca-builtin-cert-ca-1");
    assert_eq!(key.key.name, "default.ca-builtin-key-ca-1");
    assert_eq!(
        cert.spec.bytes().unwrap(),
        material.cert_pem.as_bytes().to_vec()
    );

    let back = CaMaterial::from_secrets("default", "ca-1", &cert.spec, &key.spec).unwrap();
    assert_eq!(back, material);
    // What a second control plane reads signs like the original.
    load(&back, mk_now()).unwrap();

    let empty = SecretSpec { data: None };
    let err = CaMaterial::from_secrets("default", "ca-1", &cert.spec, &empty).unwrap_err();
    assert!(
        matches!(&err, CaError::SecretData { name } if name == "default.ca-builtin-key-ca-1"),
        "{err}"
    );
}

#[test]
fn rsa_2048_builtin_ca_as_kuma_makes_it() {
    let now = mk_now();
    let material = BuiltinCa::generate("default", &BuiltinCaConfig::default(), now).unwrap();
    // PKCS#1, the form Kuma stores.
    assert!(
        material
            .key_pem
            .starts_with("-----BEGIN RSA PRIVATE KEY-----")
    );
    let der = der_of(&material.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let rsa_oid = x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
    assert_eq!(cert.public_key().algorithm.algorithm, rsa_oid);
    match cert.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
        other => panic!("not RSA: {other:?}"),
    }

    let ca = load(&material, now).unwrap();
    let tags = mk_tags(&[("kuma.io/service", "backend")]);
    let issued = issue_identity(&ca, &mk_request("default", &tags), now).unwrap();
    verify_chain(&issued.cert_pem, ca.cert_pem(), now).unwrap();
}

#[test]
fn provided_ca_matching_pair_loads() {
    let now = mk_now();
    let material = mk_ecdsa_ca("default", now);
    let ca = load(&material, now).unwrap();
    assert_eq!(ca.not_before(), now - TimeDelta::seconds(10));
    assert_eq!(ca.cert_pem(), material.cert_pem);
}

#[test]
fn provided_ca_with_another_key_is_refused() {
    let now = mk_now();
    let a = mk_ecdsa_ca("default", now);
    let b = mk_ecdsa_ca("default", now);
    let err =
        CertificateAuthority::load(a.cert_pem.as_bytes(), b.key_pem.as_bytes(), now).unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch), "{err}");
    assert_eq!(
        err.to_string(),
        // Kuma's message for the same pair.
        "not a valid TLS key pair: tls: private key does not match public key"
    );
}

#[test]
fn provided_ca_outside_its_validity_is_refused() {
    let now = mk_now();
    let options = BuiltinCaOptions {
        key: KeyAlgorithm::EcdsaP256,
        validity: Duration::from_secs(3600),
    };
    let material = BuiltinCa::generate_with("default", &options, now).unwrap();
    let err = load(&material, now + TimeDelta::hours(2)).unwrap_err();
    assert!(
        matches!(err, CaError::Expired { index: 0, not_after } if not_after == now + TimeDelta::hours(1)),
        "{err}"
    );
    let err = load(&material, now - TimeDelta::minutes(1)).unwrap_err();
    assert!(
        matches!(err, CaError::NotYetValid { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn provided_leaf_certificate_is_not_a_ca() {
    let now = mk_now();
    let ca = load(&mk_ecdsa_ca("default", now), now).unwrap();
    let tags = mk_tags(&[("kuma.io/service", "web")]);
    let leaf = issue_identity(&ca, &mk_request("default", &tags), now).unwrap();
    let err = CertificateAuthority::load(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes(), now)
        .unwrap_err();
    assert!(matches!(err, CaError::NotCa { index: 0 }), "{err}");
    assert!(
        err.to_string()
            .contains("basic constraint 'CA' must be set to 'true'")
    );

    // A chain whose second certificate is a leaf names that certificate.
    let material = mk_ecdsa_ca("default", now);
    let chain = format!("{}{}", material.cert_pem, leaf.cert_pem);
    let err =
        CertificateAuthority::load(chain.as_bytes(), material.key_pem.as_bytes(), now).unwrap_err();
    assert!(matches!(err, CaError::NotCa { index: 1 }), "{err}");
}

/// A CA made by hand with the given key usages.
fn mk_ca_with_usages(usages: Vec<KeyUsagePurpose>, now: DateTime<Utc>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "custom");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = usages;
    params.not_before = crate::time::to_offset(now - TimeDelta::days(1));
    params.not_after = crate::time::to_offset(now + TimeDelta::days(1));
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn provided_ca_key_usages_follow_x509_svid() {
    let now = mk_now();
    let (cert, key) = mk_ca_with_usages(vec![KeyUsagePurpose::CrlSign], now);
    let err = CertificateAuthority::load(cert.as_bytes(), key.as_bytes(), now).unwrap_err();
    assert!(
        matches!(err, CaError::MissingCertSign { index: 0 }),
        "{err}"
    );

    let (cert, key) = mk_ca_with_usages(
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::KeyAgreement],
        now,
    );
    let err = CertificateAuthority::load(cert.as_bytes(), key.as_bytes(), now).unwrap_err();
    assert!(
        matches!(err, CaError::KeyAgreementSet { index: 0 }),
        "{err}"
    );

    // A CA with a subject unlike Kuma's still signs leaves that verify.
    let (cert, key) = mk_ca_with_usages(vec![KeyUsagePurpose::KeyCertSign], now);
    let ca = CertificateAuthority::load(cert.as_bytes(), key.as_bytes(), now).unwrap();
    let tags = mk_tags(&[("kuma.io/service", "web")]);
    let leaf = issue_identity(&ca, &mk_request("default", &tags), now).unwrap();
    verify_chain(&leaf.cert_pem, &cert, now).unwrap();
}

#[test]
fn provided_garbage_is_refused_with_its_own_errors() {
    let now = mk_now();
    let material = mk_ecdsa_ca("default", now);
    let cases: BTreeMap<&str, (&[u8], &[u8])> = BTreeMap::from([
        (
            "no cert",
            (&b"not a certificate"[..], material.key_pem.as_bytes()),
        ),
        (
            "bad cert",
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
                material.key_pem.as_bytes(),
            ),
        ),
        (
            "no key",
            (material.cert_pem.as_bytes(), &b"nothing here"[..]),
        ),
    ]);
    for (case, (cert, key)) in cases {
        let err = CertificateAuthority::load(cert, key, now).unwrap_err();
        let ok = match case {
            "no cert" => matches!(err, CaError::NoCertificate),
            "bad cert" => matches!(err, CaError::MalformedCertificate { index: 0, .. }),
            _ => matches!(err, CaError::NoPrivateKey),
        };
        assert!(ok, "{case}: {err}");
    }
    // Kuma's messages for the same inputs.
    assert_eq!(
        CaError::NoCertificate.to_string(),
        "not a valid TLS key pair: tls: failed to find any PEM data in certificate input"
    );
    assert_eq!(
        CaError::NoPrivateKey.to_string(),
        "not a valid TLS key pair: tls: failed to find any PEM data in key input"
    );
}
