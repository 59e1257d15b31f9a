//! MeshTLS: with mTLS on, an inbound's mode and the TLS versions and
//! ciphers of mesh TLS.
//!
//! As Kuma 2.x applies the conf every client of an inbound gets:
//! - `mode` (`Strict`/`Permissive`) replaces the mesh's mTLS mode for that
//!   inbound: Permissive also accepts plaintext there, Strict only mesh TLS;
//! - `tlsVersion` and `tlsCiphers` become the TLS parameters of the
//!   inbound's server side and (Kuma allows them only on Mesh-wide
//!   policies, so they are the same for every inbound) of the proxy's
//!   client side towards other sidecars.
//!
//! Proxy identity keys are ECDSA P-256 where Kuma's are RSA, and a TLS 1.2
//! cipher suite names the key type it authenticates with: a Kuma policy
//! listing only `ECDHE-RSA-*` suites would leave no suite the proxies can
//! use. Each `ECDHE-RSA-*` suite listed therefore admits its `ECDHE-ECDSA-*`
//! counterpart (same key exchange and bulk cipher) right after it.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    TlsParameters, tls_parameters::TlsProtocol,
};
use kuma_api::kinds::mesh::MtlsMode;
use kuma_api::policies::mesh_tls::Conf;

/// The mesh mode the conf puts in place of the mesh's, if any.
pub(crate) fn mode(conf: &Conf) -> Option<MtlsMode> {
    match conf.mode.as_deref()? {
        "Strict" => Some(MtlsMode::Strict),
        "Permissive" => Some(MtlsMode::Permissive),
        _ => None,
    }
}

fn version(name: &str) -> TlsProtocol {
    match name {
        "TLS10" => TlsProtocol::TlSv10,
        "TLS11" => TlsProtocol::TlSv11,
        "TLS12" => TlsProtocol::TlSv12,
        "TLS13" => TlsProtocol::TlSv13,
        // TLSAuto, and anything validation would have refused.
        _ => TlsProtocol::TlsAuto,
    }
}

const RSA_SUITE: &str = "ECDHE-RSA-";
const ECDSA_SUITE: &str = "ECDHE-ECDSA-";

/// The suites Envoy gets for the `tlsCiphers` listed: each as listed, an
/// `ECDHE-RSA-*` one followed by its `ECDHE-ECDSA-*` counterpart.
fn cipher_suites(listed: &[String]) -> Vec<String> {
    let mut suites: Vec<String> = Vec::with_capacity(listed.len() * 2);
    let mut add = |suite: String| {
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    };
    for suite in listed {
        add(suite.clone());
        if let Some(rest) = suite.strip_prefix(RSA_SUITE) {
            add(format!("{ECDSA_SUITE}{rest}"));
        }
    }
    suites
}

/// TLS parameters, when the conf names versions or ciphers.
pub(crate) fn params(conf: &Conf) -> Option<TlsParameters> {
    let ciphers = cipher_suites(conf.tls_ciphers.as_deref().unwrap_or_default());
    let v = conf.tls_version.as_ref();
    let min = v.and_then(|v| v.min.as_deref());
    let max = v.and_then(|v| v.max.as_deref());
    if ciphers.is_empty() && min.is_none() && max.is_none() {
        return None;
    }
    Some(TlsParameters {
        tls_minimum_protocol_version: min.map_or(TlsProtocol::TlsAuto, version) as i32,
        tls_maximum_protocol_version: max.map_or(TlsProtocol::TlsAuto, version) as i32,
        cipher_suites: ciphers,
        ..TlsParameters::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuma_api::policies::mesh_tls::TlsVersion;

    #[test]
    fn mode_names_map_to_mesh_modes() {
        let conf = |m: &str| Conf {
            mode: Some(m.to_string()),
            ..Conf::default()
        };
        assert_eq!(mode(&conf("Permissive")), Some(MtlsMode::Permissive));
        assert_eq!(mode(&conf("Strict")), Some(MtlsMode::Strict));
        assert_eq!(mode(&Conf::default()), None);
    }

    #[test]
    fn rsa_suites_admit_their_ecdsa_counterparts_once() {
        let listed: Vec<String> = [
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-CHACHA20-POLY1305",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            cipher_suites(&listed),
            [
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-CHACHA20-POLY1305",
            ]
        );
        assert!(cipher_suites(&[]).is_empty());
    }

    #[test]
    fn versions_and_ciphers_become_tls_parameters() {
        assert!(params(&Conf::default()).is_none());
        let conf = Conf {
            tls_version: Some(TlsVersion {
                min: Some("TLS12".into()),
                max: Some("TLS13".into()),
            }),
            tls_ciphers: Some(vec!["ECDHE-RSA-AES256-GCM-SHA384".into()]),
            mode: None,
        };
        let p = params(&conf).expect("params");
        assert_eq!(p.tls_minimum_protocol_version, TlsProtocol::TlSv12 as i32);
        assert_eq!(p.tls_maximum_protocol_version, TlsProtocol::TlSv13 as i32);
        assert_eq!(
            p.cipher_suites,
            vec![
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES256-GCM-SHA384"
            ]
        );
        let only_min = Conf {
            tls_version: Some(TlsVersion {
                min: Some("TLS13".into()),
                max: None,
            }),
            ..Conf::default()
        };
        let p = params(&only_min).expect("params");
        assert_eq!(p.tls_minimum_protocol_version, TlsProtocol::TlSv13 as i32);
        assert_eq!(p.tls_maximum_protocol_version, TlsProtocol::TlsAuto as i32);
    }
}
