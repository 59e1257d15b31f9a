//! Secret and GlobalSecret: an opaque value, base64 in YAML/JSON.

use serde::{Deserialize, Serialize};

use crate::validation::{FieldPath, Validate, ValidationContext, Violations};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Base64 of the secret bytes, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl SecretSpec {
    /// The secret's bytes, when `data` is present and valid base64.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.data.as_deref().and_then(decode_base64)
    }
}

impl Validate for SecretSpec {
    fn validate(&self, _ctx: &ValidationContext<'_>, v: &mut Violations) {
        if let Some(data) = &self.data
            && decode_base64(data).is_none()
        {
            v.add(&FieldPath::of("data"), "has to be valid base64");
        }
    }
}

/// Decodes base64 the way protobuf's JSON mapping reads bytes: the standard
/// or the URL-safe alphabet, with or without `=` padding.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in body.bytes() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(decode_base64("c2VjcmV0"), Some(b"secret".to_vec()));
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64(""), Some(vec![]));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("a*bc"), None);
    }

    #[test]
    fn invalid_data_is_reported() {
        let ctx = ValidationContext {
            name: "s",
            mesh: Some("default"),
        };
        let mut v = Violations::new();
        SecretSpec {
            data: Some("not base64!".into()),
        }
        .validate(&ctx, &mut v);
        let got: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(got, vec![("data", "has to be valid base64")]);
        let ok = SecretSpec {
            data: Some("c2VjcmV0".into()),
        };
        assert_eq!(ok.bytes(), Some(b"secret".to_vec()));
    }
}
