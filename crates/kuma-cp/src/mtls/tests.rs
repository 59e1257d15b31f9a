use std::io::Write;
use std::sync::Mutex;

use kuma_ca::{BuiltinCa, BuiltinCaOptions, KeyAlgorithm};

use super::*;

fn mk_mesh_ca(valid_from: DateTime<Utc>, validity: Duration) -> MeshCa {
    let options = BuiltinCaOptions {
        key: KeyAlgorithm::EcdsaP256,
        validity,
    };
    let material = BuiltinCa::generate_with("m", &options, valid_from).unwrap();
    let authority = CertificateAuthority::load(
        material.cert_pem.as_bytes(),
        material.key_pem.as_bytes(),
        valid_from,
    )
    .unwrap();
    MeshCa {
        backend: "ca-1".into(),
        trusted: vec![authority.cert_pem().to_string()],
        authority,
        identity_validity: Duration::from_secs(3600),
        expiry_warned: AtomicBool::new(false),
    }
}

/// Everything logged while `f` runs, as text.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn a_ca_is_expiring_once_four_fifths_of_its_life_have_passed() {
    let ca = mk_mesh_ca(Utc::now(), Duration::from_secs(1000));
    let born = ca.authority.not_before();
    let lifetime = ca.authority.not_after() - born;
    assert!(!ca.is_expiring(born + lifetime / 2));
    assert!(!ca.is_expiring(born + lifetime * 3 / 4));
    assert!(ca.is_expiring(born + lifetime * 17 / 20));
    assert!(ca.is_expiring(ca.authority.not_after()));
}

#[test]
fn an_expiring_ca_is_logged_as_a_warning_once() {
    let ca = mk_mesh_ca(Utc::now(), Duration::from_secs(1000));
    let young = ca.authority.not_before() + chrono::TimeDelta::seconds(10);
    let old = ca.authority.not_after() - chrono::TimeDelta::seconds(10);

    assert_eq!(logged(|| ca.warn_if_expiring("m", young)), "");
    let first = logged(|| ca.warn_if_expiring("m", old));
    assert!(first.contains("WARN"), "{first}");
    assert!(first.contains("four fifths"), "{first}");
    assert!(
        first.contains("mesh=m") && first.contains("backend=ca-1"),
        "{first}"
    );
    // Every identity issued under it would log again otherwise.
    assert_eq!(logged(|| ca.warn_if_expiring("m", old)), "");
}

#[test]
fn issuing_under_an_expiring_ca_warns_and_still_issues() {
    let ca = mk_mesh_ca(Utc::now(), Duration::from_secs(1000));
    let old = ca.authority.not_after() - chrono::TimeDelta::seconds(100);
    let tags: kuma_ca::TagSet =
        [("kuma.io/service".to_string(), ["web".to_string()].into())].into();
    let mut issued = None;
    let log = logged(|| issued = Some(identity::issue(&ca, "m", tags, old)));
    assert!(log.contains("four fifths"), "{log}");
    let issued = issued.unwrap().expect("an identity");
    // Never valid past its CA.
    assert!(issued.not_after() <= ca.authority.not_after());
}
