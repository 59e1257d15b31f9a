//! Ports, IP addresses and host names, checked the way Kuma checks them.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

use crate::validation::{FieldPath, Violations};

/// `port must be in the range [1, 65535]` unless `port` is a usable TCP port.
pub fn validate_port(path: &FieldPath, port: u32, v: &mut Violations) {
    if port == 0 || port > 65535 {
        v.add(path, "port must be in the range [1, 65535]");
    }
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

// Labels of letters, digits, '_' and '-', at most 63 long, optionally a
// trailing dot: the DNS-name rule Kuma's validators apply.
static DNS_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?$")
        .expect("static regex")
});

/// A DNS name (not an IP address), at most 255 characters without dots.
pub fn is_dns_name(s: &str) -> bool {
    if s.is_empty() || s.replace('.', "").len() > 255 || is_ip(s) {
        return false;
    }
    DNS_NAME.is_match(s)
}

/// The address of a proxy (Dataplane, ZoneIngress, ZoneEgress): required,
/// not a wildcard, an IP or a DNS name.
pub fn validate_proxy_address(path: &FieldPath, address: &str, v: &mut Violations) {
    if address.is_empty() {
        v.add(path, "address can't be empty");
        return;
    }
    if address == "0.0.0.0" || address == "::" {
        v.add(path, "must not be 0.0.0.0 or ::");
    }
    if !is_ip(address) && !is_dns_name(address) {
        v.add(path, "address has to be valid IP address or domain name");
    }
}

static RFC1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex")
});

/// A lowercase RFC 1123 subdomain (`example.com`), at most 253 characters.
pub fn is_rfc1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && RFC1123_SUBDOMAIN.is_match(s)
}

/// A gateway host name: `*`, `*.domain.name` or `domain.name`.
pub fn validate_gateway_hostname(path: &FieldPath, hostname: &str, v: &mut Violations) {
    if hostname == "*" {
        return;
    }
    if hostname.len() > 253 {
        v.add(path, "must be at most 253 characters");
    }
    if let Some(rest) = hostname.strip_prefix("*.") {
        if !RFC1123_SUBDOMAIN.is_match(rest) {
            v.add(path, "invalid wildcard domain");
        }
        return;
    }
    if !RFC1123_SUBDOMAIN.is_match(hostname) {
        v.add(path, "invalid hostname");
    }
}

/// Kuma's `"field" must be one of ["a", "b"]` message.
pub fn must_be_one_of(field: &str, allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    format!("{field:?} must be one of [{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_ips() {
        assert!(is_dns_name("backend.svc"));
        assert!(is_dns_name("localhost"));
        assert!(!is_dns_name("1.2.3.4"));
        assert!(!is_dns_name("bad host"));
        assert!(!is_dns_name(""));
        assert!(is_ip("::1"));
        assert!(!is_ip("300.1.1.1"));
    }

    #[test]
    fn proxy_addresses() {
        let p = FieldPath::of("address");
        for (addr, msgs) in [
            ("", vec!["address can't be empty"]),
            ("0.0.0.0", vec!["must not be 0.0.0.0 or ::"]),
            ("::", vec!["must not be 0.0.0.0 or ::"]),
            (
                "a b",
                vec!["address has to be valid IP address or domain name"],
            ),
            ("10.0.0.1", vec![]),
        ] {
            let mut v = Violations::new();
            validate_proxy_address(&p, addr, &mut v);
            let got: Vec<_> = v.iter().map(|x| x.message.as_str()).collect();
            assert_eq!(got, msgs, "{addr}");
        }
    }

    #[test]
    fn gateway_hostnames() {
        let p = FieldPath::of("h");
        let mut v = Violations::new();
        validate_gateway_hostname(&p, "*", &mut v);
        validate_gateway_hostname(&p, "*.example.com", &mut v);
        validate_gateway_hostname(&p, "example.com", &mut v);
        assert!(v.is_empty());
        validate_gateway_hostname(&p, "*.Bad_", &mut v);
        validate_gateway_hostname(&p, "a..b", &mut v);
        let got: Vec<_> = v.iter().map(|x| x.message.as_str()).collect();
        assert_eq!(got, vec!["invalid wildcard domain", "invalid hostname"]);
    }
}
