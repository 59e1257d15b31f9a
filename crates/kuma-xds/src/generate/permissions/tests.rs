use kuma_policy::{Element, Tag, compute};
use serde_json::json;

use super::*;

/// Whether a client with these SAN URIs is one of `p`, as Envoy decides it.
fn holds(p: &Principal, sans: &[String]) -> bool {
    match &p.identifier {
        Some(principal::Identifier::Any(any)) => *any,
        Some(principal::Identifier::AndIds(set)) => set.ids.iter().all(|i| holds(i, sans)),
        Some(principal::Identifier::OrIds(set)) => set.ids.iter().any(|i| holds(i, sans)),
        Some(principal::Identifier::NotId(inner)) => !holds(inner, sans),
        Some(principal::Identifier::Authenticated(a)) => {
            match a
                .principal_name
                .as_ref()
                .and_then(|m| m.match_pattern.as_ref())
            {
                Some(MatchPattern::Exact(uri)) => sans.contains(uri),
                other => panic!("unexpected matcher {other:?}"),
            }
        }
        other => panic!("unexpected principal {other:?}"),
    }
}

fn allowed(principals: &[Principal], client: &Element) -> bool {
    let sans: Vec<String> = client
        .iter()
        .map(|(k, v)| {
            if k == SERVICE_TAG {
                names::spiffe_id("default", v)
            } else {
                names::tag_uri(k, v)
            }
        })
        .collect();
    principals.iter().any(|p| holds(p, &sans))
}

fn el(pairs: &[(&str, &str)]) -> Element {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn mk_rule(tags: Vec<Tag>, action: &str) -> Rule {
    Rule {
        subset: Subset(tags),
        conf: json!({ "action": action }),
        origins: Vec::new(),
    }
}

fn service(name: &str) -> Tag {
    Tag::new(SERVICE_TAG, name)
}

fn clients() -> Vec<Element> {
    vec![
        el(&[(SERVICE_TAG, "web")]),
        el(&[(SERVICE_TAG, "api")]),
        el(&[(SERVICE_TAG, "api"), ("version", "v2")]),
        el(&[(SERVICE_TAG, "other"), ("version", "v1")]),
    ]
}

/// RBAC lets in exactly the clients whose first matching rule allows.
fn assert_matches_first_match(rules: &[Rule]) {
    let p = Permissions::from_rules("default", rules);
    for client in clients() {
        let want = compute(rules, &client).is_some_and(|r| action(r) != Action::Deny);
        assert_eq!(allowed(&p.allowed, &client), want, "client {client:?}");
        if let Some(shadow) = &p.shadow_allowed {
            let want = compute(rules, &client).is_some_and(|r| action(r) == Action::Allow);
            assert_eq!(allowed(shadow, &client), want, "shadow, client {client:?}");
        }
    }
}

#[test]
fn no_rules_deny_everyone() {
    let p = Permissions::from_rules("default", &[]);
    assert!(p.denies_all());
    assert!(!allowed(&p.allowed, &el(&[(SERVICE_TAG, "web")])));
    // An RBAC filter with no policy under ALLOW denies every client.
    let Some(filter::ConfigType::TypedConfig(any)) =
        network_filter("inbound_10_0_0_1_8080", &p).config_type
    else {
        panic!("typed config");
    };
    let rbac = <NetworkRbac as prost::Message>::decode(any.value.as_slice()).expect("rbac");
    let rules = rbac.rules.expect("rules");
    assert_eq!(rules.action, rbac::Action::Allow as i32);
    assert!(rules.policies.is_empty());
    assert_eq!(rbac.stat_prefix, "inbound_10_0_0_1_8080.");
}

#[test]
fn mesh_allow_lets_everyone_in() {
    let rules = [mk_rule(vec![], "Allow")];
    let p = Permissions::from_rules("default", &rules);
    assert!(allowed(&p.allowed, &el(&[(SERVICE_TAG, "anything")])));
    assert!(p.shadow_allowed.is_none());
}

#[test]
fn a_denied_service_stays_out_even_when_a_later_rule_would_allow_it() {
    // Rules as the engine orders them for: Mesh Allow, web Deny, api Deny.
    let rules = [
        mk_rule(vec![service("web")], "Deny"),
        mk_rule(vec![service("api")], "Deny"),
        mk_rule(vec![Tag::not(SERVICE_TAG, "web")], "Allow"),
        mk_rule(vec![Tag::not(SERVICE_TAG, "api")], "Allow"),
    ];
    let p = Permissions::from_rules("default", &rules);
    assert!(!allowed(&p.allowed, &el(&[(SERVICE_TAG, "web")])));
    assert!(!allowed(&p.allowed, &el(&[(SERVICE_TAG, "api")])));
    assert!(allowed(&p.allowed, &el(&[(SERVICE_TAG, "other")])));
    assert_matches_first_match(&rules);
}

#[test]
fn subsets_with_tags_and_negations() {
    let rules = [
        mk_rule(vec![service("api"), Tag::new("version", "v2")], "Deny"),
        mk_rule(vec![service("api"), Tag::not("version", "v2")], "Allow"),
        mk_rule(vec![Tag::new("version", "v1")], "AllowWithShadowDeny"),
    ];
    assert_matches_first_match(&rules);
    let p = Permissions::from_rules("default", &rules);
    assert!(p.shadow_allowed.is_some());
    assert!(allowed(&p.allowed, &el(&[(SERVICE_TAG, "api")])));
    assert!(!allowed(
        &p.allowed,
        &el(&[(SERVICE_TAG, "api"), ("version", "v2")])
    ));
}

#[test]
fn shadow_deny_allows_but_shadow_rules_would_not() {
    let rules = [mk_rule(vec![service("web")], "AllowWithShadowDeny")];
    let p = Permissions::from_rules("default", &rules);
    let web = el(&[(SERVICE_TAG, "web")]);
    assert!(allowed(&p.allowed, &web));
    let shadow = p.shadow_allowed.as_ref().expect("shadow rules");
    assert!(!allowed(shadow, &web));
    let HttpFilter {
        name, config_type, ..
    } = http_filter(&p);
    assert_eq!(name, "envoy.filters.http.rbac");
    let Some(http_filter::ConfigType::TypedConfig(any)) = config_type else {
        panic!("typed config");
    };
    let rbac = <HttpRbac as prost::Message>::decode(any.value.as_slice()).expect("rbac");
    assert!(rbac.shadow_rules.is_some());
}

#[test]
fn an_unreadable_action_denies() {
    let rules = [Rule {
        subset: Subset::mesh(),
        conf: json!({}),
        origins: Vec::new(),
    }];
    assert!(Permissions::from_rules("default", &rules).denies_all());
}

#[test]
fn disjoint_subsets_are_not_excluded_again() {
    let rules = [
        mk_rule(vec![service("legacy")], "Deny"),
        mk_rule(vec![Tag::not(SERVICE_TAG, "legacy")], "Allow"),
    ];
    let p = Permissions::from_rules("default", &rules);
    assert_eq!(p.allowed.len(), 1);
    assert!(matches!(
        p.allowed[0].identifier,
        Some(principal::Identifier::NotId(_))
    ));
    assert_matches_first_match(&rules);
    assert!(disjoint(
        &Subset(vec![service("a")]),
        &Subset(vec![service("b")])
    ));
    assert!(!disjoint(
        &Subset(vec![service("a")]),
        &Subset(vec![Tag::new("version", "v1")])
    ));
    assert!(!disjoint(
        &Subset(vec![Tag::not(SERVICE_TAG, "a")]),
        &Subset(vec![Tag::not(SERVICE_TAG, "b")])
    ));
}
