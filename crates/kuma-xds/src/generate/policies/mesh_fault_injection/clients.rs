//! Which clients a per-client group of faults is for, in Envoy's terms.
//!
//! - `from` rules name clients by their tags. As in Kuma, a proxy's
//!   outbound routes send the proxy's own tags in the `x-kuma-tags` request
//!   header while the mesh has MeshFaultInjections (`&key=v1,v2&` per tag,
//!   keys and values sorted; the tags of all its inbounds), and the fault
//!   filter's `headers` match on it. Each tag of the subset is one header
//!   matcher, inverted for a negated tag; all must hold. (Kuma folds every
//!   negated tag into one inverted matcher, which also lets in clients that
//!   have only some of them; one per tag is what the subset says.) A
//!   missing header counts as empty: a client that sends no tags has none,
//!   so negated tags hold for it.
//! - `rules` entries name clients by the identity of the connection
//!   (`spiffeID` against the client certificate's URI SAN, `sni` against
//!   the requested server name). As Kuma does, the filter is wrapped in an
//!   `ExtensionWithMatcher` that skips it unless the connection matches.

use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::common::matcher::action::v3::SkipFilter;
use envoy_types::pb::envoy::extensions::matching::common_inputs::network::v3::ServerNameInput;
use envoy_types::pb::envoy::extensions::matching::common_inputs::ssl::v3::UriSanInput;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher as EnvoyStringMatcher, string_matcher as envoy_string_matcher,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::predicate::{
    MatchType, SinglePredicate, single_predicate,
};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_list::{FieldMatcher, Predicate};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{MatcherList, OnMatch, on_match};
use envoy_types::pb::xds::r#type::matcher::v3::{Matcher, StringMatcher, matcher, string_matcher};
use envoy_types::util::pack_any;
use kuma_api::kinds::dataplane::DataplaneSpec;
use kuma_api::policies::values::{Match, TypedValue};
use kuma_policy::Subset;

/// The request header Kuma's outbounds put the calling proxy's tags in.
pub(crate) const TAGS_HEADER: &str = "x-kuma-tags";

/// The `x-kuma-tags` value a proxy sends: every tag of its inbounds (and a
/// gateway's own tags), each key once with all its values.
pub(crate) fn tags_header_value(dataplane: &DataplaneSpec) -> String {
    let mut tags: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        std::collections::BTreeMap::new();
    let networking = dataplane.networking.as_ref();
    let inbound_tags = dataplane.inbounds().iter().flat_map(|i| i.tags.iter());
    let gateway_tags = networking
        .and_then(|n| n.gateway.as_ref())
        .into_iter()
        .flat_map(|g| g.tags.iter());
    for (key, value) in inbound_tags.chain(gateway_tags) {
        tags.entry(key).or_default().insert(value);
    }
    tags.iter()
        .map(|(key, values)| {
            let values: Vec<&str> = values.iter().copied().collect();
            format!("&{key}={}&", values.join(","))
        })
        .collect()
}

/// RE2 text matching `s` literally.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header value (as [`tags_header_value`] writes it) that has `value`
/// among the values of `key`. Envoy's regexes must match the whole value.
fn tag_regex(key: &str, value: &str) -> String {
    format!(".*&{}=([^&]*,)?{}[,&].*", escape(key), escape(value))
}

/// The fault filter's `headers`: clients whose tags are in `subset`.
pub(super) fn header_matchers(subset: &Subset) -> Vec<HeaderMatcher> {
    subset
        .tags()
        .iter()
        .map(|tag| HeaderMatcher {
            name: TAGS_HEADER.to_string(),
            invert_match: tag.not,
            treat_missing_header_as_empty: true,
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                EnvoyStringMatcher {
                    match_pattern: Some(envoy_string_matcher::MatchPattern::SafeRegex(
                        RegexMatcher {
                            regex: tag_regex(&tag.key, &tag.value),
                            ..RegexMatcher::default()
                        },
                    )),
                    ..EnvoyStringMatcher::default()
                },
            )),
        })
        .collect()
}

fn single(input_name: &str, input: Any, value: StringMatcher) -> Predicate {
    Predicate {
        match_type: Some(MatchType::SinglePredicate(SinglePredicate {
            input: Some(TypedExtensionConfig {
                name: input_name.to_string(),
                typed_config: Some(input),
            }),
            matcher: Some(single_predicate::Matcher::ValueMatch(value)),
        })),
    }
}

/// An RE2 regex for a caller identity among the peer certificate's URI
/// SANs. Envoy gives those as one comma-separated text, and mesh
/// certificates carry `kuma://` tag URIs beside the SPIFFE ID, so the ID
/// is matched as one of the items (exactly, or as a prefix of one).
pub(crate) fn uri_san_regex(id: &TypedValue) -> String {
    let value = escape(&id.value);
    if id.kind == "Prefix" {
        format!("(.*,)?{value}.*")
    } else {
        format!("(.*,)?{value}(,.*)?")
    }
}

/// The same condition as [`uri_san_regex`] without a regex (the xDS
/// matcher's regexes need an engine message our YAML rendering cannot
/// show): the ID alone, first, last or in the middle of the list; a prefix
/// at the start or after a comma.
fn uri_san_predicate(id: &TypedValue) -> Predicate {
    use string_matcher::MatchPattern::{Contains, Exact, Prefix, Suffix};
    let v = &id.value;
    let patterns = if id.kind == "Prefix" {
        vec![Prefix(v.clone()), Contains(format!(",{v}"))]
    } else {
        vec![
            Exact(v.clone()),
            Prefix(format!("{v},")),
            Suffix(format!(",{v}")),
            Contains(format!(",{v},")),
        ]
    };
    let any_of = patterns
        .into_iter()
        .map(|p| {
            single(
                "envoy.matching.inputs.uri_san",
                pack_any(UriSanInput::default()),
                StringMatcher {
                    match_pattern: Some(p),
                    ..StringMatcher::default()
                },
            )
        })
        .collect();
    Predicate {
        match_type: Some(MatchType::OrMatcher(
            matcher::matcher_list::predicate::PredicateList { predicate: any_of },
        )),
    }
}

fn exact_match(value: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_string())),
        ..StringMatcher::default()
    }
}

/// What a connection must be to match `m`; `None` when `m` sets no
/// condition (every client).
fn predicate(m: &Match) -> Option<Predicate> {
    let mut all = Vec::new();
    if let Some(id) = &m.spiffe_id {
        all.push(uri_san_predicate(id));
    }
    if let Some(sni) = &m.sni {
        // SNI matches are exact in Kuma whatever their type says.
        all.push(single(
            "envoy.matching.inputs.server_name",
            pack_any(ServerNameInput::default()),
            exact_match(&sni.value),
        ));
    }
    match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Predicate {
            match_type: Some(MatchType::AndMatcher(
                matcher::matcher_list::predicate::PredicateList { predicate: all },
            )),
        }),
    }
}

/// A matcher that skips the filter it wraps unless the connection matches
/// `m`; `None` when `m` sets no condition.
pub(super) fn skip_unless(m: &Match) -> Option<Matcher> {
    let matched = predicate(m)?;
    let skip = OnMatch {
        on_match: Some(on_match::OnMatch::Action(TypedExtensionConfig {
            name: "skip".to_string(),
            typed_config: Some(pack_any(SkipFilter::default())),
        })),
        ..OnMatch::default()
    };
    Some(Matcher {
        matcher_type: Some(matcher::MatcherType::MatcherList(MatcherList {
            matchers: vec![FieldMatcher {
                predicate: Some(Predicate {
                    match_type: Some(MatchType::NotMatcher(Box::new(matched))),
                }),
                on_match: Some(skip),
            }],
        })),
        ..Matcher::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kuma_policy::Tag;

    fn dataplane(yaml: &str) -> DataplaneSpec {
        serde_yaml::from_str(yaml).expect("dataplane")
    }

    #[test]
    fn header_value_lists_every_inbound_tag_sorted() {
        let dp = dataplane(
            r#"
networking:
  address: 10.0.0.1
  inbound:
  - port: 8080
    tags: {kuma.io/service: web, version: v2, kuma.io/protocol: http}
  - port: 8081
    tags: {kuma.io/service: web-admin, version: v1}
"#,
        );
        assert_eq!(
            tags_header_value(&dp),
            "&kuma.io/protocol=http&&kuma.io/service=web,web-admin&&version=v1,v2&"
        );
    }

    #[test]
    fn tag_regex_takes_a_whole_value_among_the_key_s_values() {
        // Envoy checks it against real headers in the e2e tests; here its
        // text: the key after `&`, any earlier values, the value ended by
        // `,` or `&` (so `web` does not match `xweb` or `web-admin`), dots
        // escaped.
        assert_eq!(
            tag_regex("kuma.io/service", "a.b"),
            r".*&kuma\.io/service=([^&]*,)?a\.b[,&].*"
        );
        assert_eq!(escape("a+b(c)|d"), r"a\+b\(c\)\|d");
    }

    #[test]
    fn an_identity_is_one_of_the_comma_separated_uri_sans() {
        let id = |kind: &str| TypedValue {
            kind: kind.into(),
            value: "spiffe://default/web".into(),
        };
        assert_eq!(
            uri_san_regex(&id("Exact")),
            r"(.*,)?spiffe://default/web(,.*)?"
        );
        assert_eq!(
            uri_san_regex(&id("Prefix")),
            r"(.*,)?spiffe://default/web.*"
        );
    }

    #[test]
    fn one_matcher_per_tag_negated_ones_inverted() {
        let subset = Subset(vec![
            Tag::new("kuma.io/service", "web"),
            Tag::not("version", "v1"),
        ]);
        let got: Vec<(bool, bool)> = header_matchers(&subset)
            .iter()
            .map(|m| (m.invert_match, m.treat_missing_header_as_empty))
            .collect();
        assert_eq!(got, vec![(false, true), (true, true)]);
        assert!(header_matchers(&Subset::mesh()).is_empty());
    }

    #[test]
    fn identity_matcher_skips_unless_the_match_holds() {
        let m = Match {
            spiffe_id: Some(TypedValue {
                kind: "Prefix".into(),
                value: "spiffe://default/".into(),
            }),
            sni: None,
        };
        let matcher = skip_unless(&m).expect("a condition");
        let Some(matcher::MatcherType::MatcherList(list)) = matcher.matcher_type else {
            panic!("a matcher list");
        };
        let field = &list.matchers[0];
        let Some(MatchType::NotMatcher(inner)) =
            field.predicate.as_ref().and_then(|p| p.match_type.clone())
        else {
            panic!("skip when the match does not hold");
        };
        let Some(MatchType::OrMatcher(any_of)) = inner.match_type else {
            panic!("one of the URI SANs");
        };
        let got: Vec<(String, Option<string_matcher::MatchPattern>)> = any_of
            .predicate
            .into_iter()
            .map(|p| match p.match_type {
                Some(MatchType::SinglePredicate(single)) => (
                    single.input.map(|i| i.name).unwrap_or_default(),
                    match single.matcher {
                        Some(single_predicate::Matcher::ValueMatch(m)) => m.match_pattern,
                        _ => None,
                    },
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        let uri_san = "envoy.matching.inputs.uri_san".to_string();
        assert_eq!(
            got,
            vec![
                (
                    uri_san.clone(),
                    Some(string_matcher::MatchPattern::Prefix(
                        "spiffe://default/".into()
                    ))
                ),
                (
                    uri_san,
                    Some(string_matcher::MatchPattern::Contains(
                        ",spiffe://default/".into()
                    ))
                ),
            ]
        );
        assert!(skip_unless(&Match::default()).is_none());
    }
}
