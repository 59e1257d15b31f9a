//! From a Debug tree to YAML close to Envoy's own proto-JSON form: oneofs
//! flattened into their member's name, enums in SCREAMING_SNAKE, well-known
//! types (Duration, wrappers, Struct, Any) as Envoy writes them, defaults left out.

use std::collections::HashMap;

use super::debug::Node;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Yaml {
    Map(Vec<(String, Yaml)>),
    Seq(Vec<Yaml>),
    /// Already in its YAML spelling (quoted when needed).
    Scalar(String),
}

/// What the Debug text does not say: how to open an `Any`, and which enum
/// value is each field's default (a bare name in the text, like any other).
pub(crate) struct Schema<'a> {
    /// The Debug tree of the message packed in an `Any`, for known types.
    pub decode: &'a dyn Fn(&str, &[u8]) -> Option<Node>,
    /// Message name -> field -> the enum value it has by default.
    pub enum_defaults: &'a HashMap<String, HashMap<String, String>>,
}

/// Messages without fields print as bare names, like enum values; these are
/// the ones our configuration uses.
const FIELDLESS_MESSAGES: &[&str] = &[
    "AggregatedConfigSource",
    "Empty",
    "LocalityWeightedLbConfig",
    "PreviousHostsPredicate",
    "TlsInspector",
];

const WRAPPERS: &[&str] = &[
    "BoolValue",
    "BytesValue",
    "DoubleValue",
    "FloatValue",
    "Int32Value",
    "Int64Value",
    "StringValue",
    "UInt32Value",
    "UInt64Value",
];

pub(crate) fn convert(node: &Node, schema: &Schema<'_>) -> Option<Yaml> {
    match node {
        Node::Ident(i) => match i.as_str() {
            "None" | "false" => None,
            "true" => Some(Yaml::Scalar("true".into())),
            name if FIELDLESS_MESSAGES.contains(&name) => Some(Yaml::Map(Vec::new())),
            variant => Some(Yaml::Scalar(proto_enum_name(variant))),
        },
        Node::Str(s) if s.is_empty() => None,
        Node::Str(s) => Some(Yaml::Scalar(quote(s))),
        Node::Number(n) if is_zero(n) => None,
        Node::Number(n) => Some(Yaml::Scalar(n.clone())),
        Node::List(items) if items.is_empty() => None,
        Node::List(items) => Some(Yaml::Seq(
            items
                .iter()
                .map(|i| convert(i, schema).unwrap_or(Yaml::Map(Vec::new())))
                .collect(),
        )),
        Node::Map(entries) if entries.is_empty() => None,
        Node::Map(entries) => {
            let mut out: Vec<(String, Yaml)> = entries
                .iter()
                .filter_map(|(k, v)| Some((key_text(k), convert(v, schema)?)))
                .collect();
            // Protobuf maps are hash maps: sort for a stable rendering.
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Some(Yaml::Map(out))
        }
        Node::Tuple(name, items) => {
            let inner = match items.as_slice() {
                [one] => convert(one, schema),
                many => convert(&Node::List(many.to_vec()), schema),
            };
            if name == "Some" {
                // Presence matters: a present default scalar still shows.
                inner.or_else(|| items.first().map(default_of))
            } else {
                let value = inner.or_else(|| items.first().map(default_of))?;
                Some(Yaml::Map(vec![(snake(name), value)]))
            }
        }
        Node::Struct(name, fields) => Some(convert_struct(name, fields, schema)),
    }
}

/// How a present but default value reads.
fn default_of(node: &Node) -> Yaml {
    match node {
        Node::Str(_) => Yaml::Scalar("''".into()),
        Node::Number(n) => Yaml::Scalar(n.clone()),
        Node::Ident(i) if i == "false" => Yaml::Scalar("false".into()),
        Node::List(_) => Yaml::Seq(Vec::new()),
        _ => Yaml::Map(Vec::new()),
    }
}

fn field<'a>(fields: &'a [(String, Node)], name: &str) -> Option<&'a Node> {
    fields.iter().find(|(f, _)| f == name).map(|(_, v)| v)
}

fn convert_struct(name: &str, fields: &[(String, Node)], schema: &Schema<'_>) -> Yaml {
    match name {
        "Duration" => return Yaml::Scalar(duration(fields)),
        w if WRAPPERS.contains(&w) => {
            if let Some(v) = field(fields, "value") {
                return convert(v, schema).unwrap_or_else(|| default_of(v));
            }
        }
        "Struct" => {
            if let Some(f) = field(fields, "fields") {
                return convert(f, schema).unwrap_or(Yaml::Map(Vec::new()));
            }
        }
        "Value" => {
            if let Some(Node::Tuple(_, kind)) = field(fields, "kind")
                && let [Node::Tuple(_, inner)] = kind.as_slice()
                && let [value] = inner.as_slice()
            {
                return convert(value, schema).unwrap_or_else(|| default_of(value));
            }
        }
        "ListValue" => {
            if let Some(v) = field(fields, "values") {
                return convert(v, schema).unwrap_or(Yaml::Seq(Vec::new()));
            }
        }
        // Envoy spells HTTP status codes in CamelCase (`TooManyRequests`).
        "HttpStatus" => {
            if let Some(Node::Ident(code)) = field(fields, "code") {
                return Yaml::Map(vec![("code".into(), Yaml::Scalar(code.clone()))]);
            }
        }
        "Any" => {
            if let (Some(Node::Str(url)), Some(value)) =
                (field(fields, "type_url"), field(fields, "value"))
            {
                return convert_any(url, value, schema);
            }
        }
        _ => {}
    }
    let mut out = Vec::new();
    let enum_defaults = schema.enum_defaults.get(name);
    for (fname, value) in fields {
        if let Node::Ident(v) = value
            && enum_defaults.and_then(|d| d.get(fname)) == Some(v)
        {
            continue;
        }
        // A oneof reads as its member: `address: Some(SocketAddress(..))`
        // becomes `socket_address: ..`, as in Envoy's JSON.
        let (key, value) = match value {
            Node::Tuple(some, inner) if some == "Some" => match inner.as_slice() {
                [Node::Tuple(variant, member)] if variant != "Some" && member.len() == 1 => {
                    (snake(variant), &member[0])
                }
                _ => (fname.clone(), value),
            },
            _ => (fname.clone(), value),
        };
        let converted = match value {
            // A oneof member is present even when default.
            _ if key != *fname => convert(value, schema).or_else(|| Some(default_of(value))),
            _ => convert(value, schema),
        };
        if let Some(v) = converted {
            out.push((key, v));
        }
    }
    Yaml::Map(out)
}

fn convert_any(url: &str, value: &Node, schema: &Schema<'_>) -> Yaml {
    let bytes: Vec<u8> = match value {
        Node::List(items) => items
            .iter()
            .filter_map(|n| match n {
                Node::Number(d) => d.parse().ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out = vec![("'@type'".to_string(), Yaml::Scalar(quote(url)))];
    match (schema.decode)(url, &bytes).and_then(|n| convert(&n, schema)) {
        Some(Yaml::Map(fields)) => out.extend(fields),
        Some(other) => out.push(("value".into(), other)),
        None if bytes.is_empty() => {}
        None => out.push((
            "undecoded_bytes".into(),
            Yaml::Scalar(bytes.len().to_string()),
        )),
    }
    Yaml::Map(out)
}

fn duration(fields: &[(String, Node)]) -> String {
    let num = |f: &str| match field(fields, f) {
        Some(Node::Number(n)) => n.parse::<i64>().unwrap_or(0),
        _ => 0,
    };
    let (seconds, nanos) = (num("seconds"), num("nanos"));
    if nanos == 0 {
        format!("{seconds}s")
    } else {
        let frac = format!("{:09}", nanos.unsigned_abs());
        format!("{seconds}.{}s", frac.trim_end_matches('0'))
    }
}

fn is_zero(n: &str) -> bool {
    n.parse::<f64>().is_ok_and(|v| v == 0.0)
}

fn key_text(k: &Node) -> String {
    match k {
        Node::Str(s) => quote(s),
        Node::Number(n) | Node::Ident(n) => n.clone(),
        other => quote(&format!("{other:?}")),
    }
}

/// `SocketAddress` -> `socket_address`, `Http2ProtocolOptions` -> `http2_protocol_options`.
pub(crate) fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `RoundRobin` -> `ROUND_ROBIN`: protobuf enum value names.
/// An enum value as Envoy names it: SCREAMING_SNAKE, except TLS versions.
fn proto_enum_name(variant: &str) -> String {
    match variant.strip_prefix("TlSv") {
        Some(v) if v.len() == 2 => format!("TLSv{}_{}", &v[..1], &v[1..]),
        // Hash functions keep an underscore before their number.
        _ if variant == "MurmurHash2" => "MURMUR_HASH_2".to_string(),
        _ => screaming_snake(variant),
    }
}

fn screaming_snake(camel: &str) -> String {
    snake(camel).to_ascii_uppercase()
}

/// Plain when YAML reads it back as the same string, single-quoted otherwise.
pub(crate) fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(char::is_control)
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else if s.chars().any(char::is_control) {
        format!("{s:?}")
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Block-style YAML text of a value.
pub(crate) fn emit(value: &Yaml) -> String {
    let mut out = String::new();
    match value {
        Yaml::Scalar(s) => {
            out.push_str(s);
            out.push('\n');
        }
        other => emit_block(other, 0, &mut out),
    }
    out
}

fn emit_block(value: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Yaml::Map(entries) if entries.is_empty() => out.push_str(&format!("{pad}{{}}\n")),
        Yaml::Seq(items) if items.is_empty() => out.push_str(&format!("{pad}[]\n")),
        Yaml::Scalar(s) => out.push_str(&format!("{pad}{s}\n")),
        Yaml::Map(entries) => {
            for (k, v) in entries {
                match v {
                    Yaml::Scalar(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    Yaml::Map(m) if m.is_empty() => out.push_str(&format!("{pad}{k}: {{}}\n")),
                    Yaml::Seq(s) if s.is_empty() => out.push_str(&format!("{pad}{k}: []\n")),
                    Yaml::Map(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        emit_block(v, indent + 2, out);
                    }
                    Yaml::Seq(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        emit_block(v, indent, out);
                    }
                }
            }
        }
        Yaml::Seq(items) => {
            for item in items {
                // The first line of the item goes after "- ", the rest indented under it.
                let mut inner = String::new();
                emit_block(item, 0, &mut inner);
                for (i, line) in inner.lines().enumerate() {
                    if i == 0 {
                        out.push_str(&format!("{pad}- {line}\n"));
                    } else {
                        out.push_str(&format!("{pad}  {line}\n"));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::debug::parse;

    fn no_any(_: &str, _: &[u8]) -> Option<Node> {
        None
    }

    fn yaml(debug: &str) -> String {
        let node = parse(debug).expect("parses");
        let defaults = [(
            "SocketAddress".to_string(),
            [("protocol".to_string(), "Tcp".to_string())].into(),
        )]
        .into();
        let schema = Schema {
            decode: &no_any,
            enum_defaults: &defaults,
        };
        convert(&node, &schema)
            .map(|y| emit(&y))
            .unwrap_or_default()
    }

    #[test]
    fn oneofs_flatten_defaults_vanish_enums_shout() {
        let text = "Address { address: Some(SocketAddress(SocketAddress { protocol: Udp, \
                    address: \"10.0.0.1\", port_specifier: Some(PortValue(8080)), \
                    resolver_name: \"\", ipv4_compat: false, network_namespace_filepath: \"\" })) }";
        assert_eq!(
            yaml(text),
            "socket_address:\n  protocol: UDP\n  address: 10.0.0.1\n  port_value: 8080\n"
        );
    }

    #[test]
    fn well_known_types_read_as_envoy_writes_them() {
        let text = "C { t: Some(Duration { seconds: 1, nanos: 500000000 }), \
                    w: Some(UInt32Value { value: 0 }), e: Some(AggregatedConfigSource), \
                    m: {\"b\": 1, \"a\": 2}, l: [] }";
        assert_eq!(yaml(text), "t: 1.5s\nw: 0\ne: {}\nm:\n  a: 2\n  b: 1\n");
    }

    #[test]
    fn sequences_of_maps() {
        let text = "X { items: [Y { name: \"a\", n: 1 }, Y { name: \"*\", n: 0 }] }";
        assert_eq!(yaml("SocketAddress { protocol: Tcp }"), "{}\n");
        assert_eq!(yaml(text), "items:\n- name: a\n  n: 1\n- name: '*'\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("inbound:10.0.0.1:80"), "inbound:10.0.0.1:80");
        assert_eq!(quote("8080"), "'8080'");
        assert_eq!(quote("true"), "'true'");
        assert_eq!(quote("it's"), "it's");
        assert_eq!(quote("'x'"), "'''x'''");
        assert_eq!(quote("@type"), "'@type'");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
    }
}
