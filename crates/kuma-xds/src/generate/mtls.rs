//! Mutual TLS between sidecars: each proxy presents its SPIFFE identity and
//! trusts the mesh CA, both delivered as SDS secrets over the ADS stream.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    SubjectAltNameMatcher, TlsCertificate, TlsParameters, UpstreamTlsContext, common_tls_context,
    secret, subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use kuma_api::kinds::mesh::MtlsMode;

use super::cluster::ads_config_source;
use super::snapshot::MeshSnapshot;
use super::{ProxyIdentity, names};
use crate::XdsResource;

const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// Sidecars announce this ALPN to each other, so that an inbound can tell
/// mesh traffic from other TLS.
pub(crate) const MESH_ALPN: &str = "kuma";

/// mTLS as it applies to one proxy: on only when the mesh enables a CA
/// backend and the proxy has an identity from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MeshTls<'a> {
    pub mesh: &'a str,
    pub mode: MtlsMode,
    pub identity: &'a ProxyIdentity,
}

impl<'a> MeshTls<'a> {
    pub fn of(snapshot: &'a MeshSnapshot, identity: Option<&'a ProxyIdentity>) -> Option<Self> {
        let backend = snapshot.mesh_spec()?.enabled_ca_backend()?;
        Some(MeshTls {
            mesh: snapshot.mesh(),
            mode: backend.mode(),
            identity: identity?,
        })
    }

    /// The proxy's identity certificate and the mesh CA, as SDS secrets.
    pub fn secrets(&self) -> [XdsResource; 2] {
        let identity_name = names::identity_secret(self.mesh);
        let identity = Secret {
            name: identity_name.clone(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(&self.identity.cert_chain_pem)),
                private_key: Some(inline(&self.identity.private_key_pem)),
                ..TlsCertificate::default()
            })),
        };
        let ca_name = names::mesh_ca_secret(self.mesh);
        let ca = Secret {
            name: ca_name.clone(),
            r#type: Some(secret::Type::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(inline(&ca_bundle(&self.identity.ca_pems))),
                    ..CertificateValidationContext::default()
                },
            )),
        };
        [
            XdsResource::new(identity_name, pack_any(identity)),
            XdsResource::new(ca_name, pack_any(ca)),
        ]
    }
}

/// Several CAs (during a CA change) trusted at once: one PEM bundle.
fn ca_bundle(pems: &[String]) -> String {
    let mut out = String::new();
    for pem in pems {
        out.push_str(pem.trim_end());
        out.push('\n');
    }
    out
}

fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..DataSource::default()
    }
}

fn sds(name: String) -> SdsSecretConfig {
    SdsSecretConfig {
        name,
        sds_config: Some(ads_config_source()),
    }
}

fn uri_san(pattern: MatchPattern) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(pattern),
            ..StringMatcher::default()
        }),
        ..SubjectAltNameMatcher::default()
    }
}

/// The proxy's certificate, and peers checked against the mesh CA and `sans`.
fn common(
    mesh: &str,
    sans: Vec<SubjectAltNameMatcher>,
    alpn: Vec<String>,
    params: Option<TlsParameters>,
) -> CommonTlsContext {
    CommonTlsContext {
        alpn_protocols: alpn,
        tls_params: params,
        tls_certificate_sds_secret_configs: vec![sds(names::identity_secret(mesh))],
        validation_context_type: Some(
            common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: sans,
                        ..CertificateValidationContext::default()
                    }),
                    validation_context_sds_secret_config: Some(sds(names::mesh_ca_secret(mesh))),
                    ..Default::default()
                },
            ),
        ),
        ..CommonTlsContext::default()
    }
}

fn transport_socket(config: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(config)),
    }
}

/// The client side of mesh TLS for one proxy: the mesh's TLS, and the TLS
/// versions and ciphers MeshTLS sets for the proxy's outbound clusters.
#[derive(Debug)]
pub(crate) struct ClientTls<'a> {
    pub tls: &'a MeshTls<'a>,
    params: Option<TlsParameters>,
    /// `params` as text for cluster cache keys, written once per proxy
    /// rather than per destination; empty without params.
    key: String,
}

impl<'a> ClientTls<'a> {
    pub fn new(tls: &'a MeshTls<'a>, params: Option<TlsParameters>) -> Self {
        let key = params.as_ref().map_or_else(String::new, params_key);
        ClientTls { tls, params, key }
    }

    /// What tells this proxy's upstream TLS apart from another's in a
    /// shared cluster's cache key (the mesh is in the cluster's name).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The transport socket towards a destination (see [`upstream`]).
    pub fn upstream(&self, sni: &str, services: &[String]) -> TransportSocket {
        upstream(self.tls.mesh, sni, services, self.params.clone())
    }
}

/// A compact text of TLS parameters: versions by number, then ciphers
/// (whose names hold neither `,` nor `:`).
fn params_key(params: &TlsParameters) -> String {
    format!(
        "|tls={},{},{}",
        params.tls_minimum_protocol_version,
        params.tls_maximum_protocol_version,
        params.cipher_suites.join(":")
    )
}

/// Client side towards a destination: SNI `sni`, and the peer must be one of
/// the `services` of the mesh (`spiffe://<mesh>/<service>`, exactly).
/// `params` (from MeshTLS) narrow the TLS versions and ciphers.
pub(crate) fn upstream(
    mesh: &str,
    sni: &str,
    services: &[String],
    params: Option<TlsParameters>,
) -> TransportSocket {
    let sans = services
        .iter()
        .map(|s| uri_san(MatchPattern::Exact(names::spiffe_id(mesh, s))))
        .collect();
    let tls = UpstreamTlsContext {
        common_tls_context: Some(common(mesh, sans, vec![MESH_ALPN.to_string()], params)),
        sni: sni.to_string(),
        ..UpstreamTlsContext::default()
    };
    transport_socket(pack_any(tls))
}

/// Server side of an inbound: clients must present a certificate of this
/// mesh; which of them may call is MeshTrafficPermission's business.
/// `params` (from MeshTLS) narrow the TLS versions and ciphers.
pub(crate) fn downstream(mesh: &str, params: Option<TlsParameters>) -> TransportSocket {
    let sans = vec![uri_san(MatchPattern::Prefix(format!("spiffe://{mesh}/")))];
    let tls = DownstreamTlsContext {
        common_tls_context: Some(common(mesh, sans, Vec::new(), params)),
        require_client_certificate: Some(BoolValue { value: true }),
        ..DownstreamTlsContext::default()
    };
    transport_socket(pack_any(tls))
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::tls_parameters::TlsProtocol;

    use super::*;

    #[test]
    fn ca_bundle_joins_pems_one_per_block() {
        let bundle = ca_bundle(&["A\n".to_string(), "B".to_string()]);
        assert_eq!(bundle, "A\nB\n");
    }

    #[test]
    fn upstream_matches_each_service_exactly() {
        let tls = upstream_tls(upstream(
            "default",
            "backend{mesh=default}",
            &["backend".to_string()],
            None,
        ));
        assert_eq!(tls.sni, "backend{mesh=default}");
        let common = tls.common_tls_context.expect("common");
        assert_eq!(common.alpn_protocols, vec!["kuma".to_string()]);
        assert_eq!(common.tls_params, None, "Envoy's defaults without MeshTLS");
        let Some(common_tls_context::ValidationContextType::CombinedValidationContext(v)) =
            common.validation_context_type
        else {
            panic!("combined validation");
        };
        let sans = v
            .default_validation_context
            .expect("sans")
            .match_typed_subject_alt_names;
        assert_eq!(sans.len(), 1);
        assert_eq!(
            sans[0]
                .matcher
                .as_ref()
                .and_then(|m| m.match_pattern.clone()),
            Some(MatchPattern::Exact("spiffe://default/backend".into()))
        );
        assert_eq!(
            v.validation_context_sds_secret_config.map(|s| s.name),
            Some("mesh_ca:secret:default".to_string())
        );
    }

    fn upstream_tls(socket: TransportSocket) -> UpstreamTlsContext {
        let Some(transport_socket::ConfigType::TypedConfig(any)) = socket.config_type else {
            panic!("typed config");
        };
        <UpstreamTlsContext as prost::Message>::decode(any.value.as_slice()).expect("upstream tls")
    }

    fn mk_params(max: TlsProtocol, ciphers: &[&str]) -> TlsParameters {
        TlsParameters {
            tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
            tls_maximum_protocol_version: max as i32,
            cipher_suites: ciphers.iter().map(|c| c.to_string()).collect(),
            ..TlsParameters::default()
        }
    }

    fn mk_identity() -> ProxyIdentity {
        ProxyIdentity {
            cert_chain_pem: "CERT".into(),
            private_key_pem: "KEY".into(),
            ca_pems: vec!["CA".into()],
        }
    }

    #[test]
    fn client_tls_puts_meshtls_params_on_every_upstream() {
        let identity = mk_identity();
        let mesh = MeshTls {
            mesh: "default",
            mode: MtlsMode::Strict,
            identity: &identity,
        };
        let params = mk_params(TlsProtocol::TlSv12, &["ECDHE-RSA-AES256-GCM-SHA384"]);
        let client = ClientTls::new(&mesh, Some(params.clone()));
        let tls = upstream_tls(client.upstream("svc{mesh=default}", &["svc".into()]));
        assert_eq!(tls.sni, "svc{mesh=default}");
        let common = tls.common_tls_context.expect("common");
        assert_eq!(common.tls_params, Some(params));
        // The rest of the context is what it is without MeshTLS.
        assert_eq!(common.alpn_protocols, vec![MESH_ALPN.to_string()]);
        assert_eq!(
            common.tls_certificate_sds_secret_configs[0].name,
            "identity_cert:secret:default"
        );

        let plain = ClientTls::new(&mesh, None);
        let tls = upstream_tls(plain.upstream("svc{mesh=default}", &["svc".into()]));
        assert_eq!(tls.common_tls_context.expect("common").tls_params, None);
    }

    #[test]
    fn client_tls_keys_tell_params_apart() {
        let identity = mk_identity();
        let mesh = MeshTls {
            mesh: "default",
            mode: MtlsMode::Strict,
            identity: &identity,
        };
        let key = |p: Option<TlsParameters>| ClientTls::new(&mesh, p).key().to_string();
        assert_eq!(key(None), "");
        let tls12 = key(Some(mk_params(TlsProtocol::TlSv12, &[])));
        let tls13 = key(Some(mk_params(TlsProtocol::TlSv13, &[])));
        let one = key(Some(mk_params(TlsProtocol::TlSv12, &["A"])));
        let two = key(Some(mk_params(TlsProtocol::TlSv12, &["A", "B"])));
        let keys = [&tls12, &tls13, &one, &two];
        for (i, a) in keys.iter().enumerate() {
            assert!(!a.is_empty());
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key(Some(mk_params(TlsProtocol::TlSv12, &["A"]))), one);
    }
}
