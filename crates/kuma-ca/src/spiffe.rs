//! SPIFFE IDs: `spiffe://<mesh>` for a mesh's CA, `spiffe://<mesh>/<service>`
//! for a workload. The mesh name is the trust domain.

use crate::error::{CaError, Result};

/// The URI SAN of a mesh's CA certificate.
pub fn trust_domain_id(mesh: &str) -> Result<String> {
    check_trust_domain(mesh)?;
    Ok(format!("spiffe://{mesh}"))
}

/// The URI SAN naming one service of a mesh.
pub fn workload_id(mesh: &str, service: &str) -> Result<String> {
    check_trust_domain(mesh)?;
    let invalid = |reason| CaError::InvalidSpiffeId {
        value: service.to_string(),
        reason,
    };
    if service.is_empty() {
        return Err(invalid("path segment is empty"));
    }
    if service == "." || service == ".." {
        return Err(invalid("path segment is a relative path"));
    }
    if !service
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(invalid(
            "path segment may contain only letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(format!("spiffe://{mesh}/{service}"))
}

fn check_trust_domain(mesh: &str) -> Result<()> {
    let invalid = |reason| CaError::InvalidSpiffeId {
        value: mesh.to_string(),
        reason,
    };
    if mesh.is_empty() {
        return Err(invalid("trust domain is empty"));
    }
    if !mesh
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(invalid(
            "trust domain may contain only lowercase letters, digits, '.', '-' and '_'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_spiffe_grammar() {
        assert_eq!(trust_domain_id("default").unwrap(), "spiffe://default");
        assert_eq!(
            workload_id("default", "backend_kuma-demo_svc_8080").unwrap(),
            "spiffe://default/backend_kuma-demo_svc_8080"
        );
        assert!(trust_domain_id("Default").is_err());
        assert!(trust_domain_id("").is_err());
        assert!(workload_id("default", "").is_err());
        assert!(workload_id("default", "..").is_err());
        assert!(workload_id("default", "a/b").is_err());
        assert!(workload_id("default", "a b").is_err());
    }
}
