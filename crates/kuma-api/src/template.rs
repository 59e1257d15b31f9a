//! Resource files as templates: `kumactl apply --var k=v` and
//! `kuma-dp run --dataplane-var k=v` render them as mustache, as Kuma does.
//! We support the part of mustache users rely on: `{{ name }}`
//! (HTML-escaped, as mustache does), `{{{ name }}}` and `{{& name }}` (raw)
//! and `{{! comments }}`. Names may contain dots. Unknown names render empty,
//! as in mustache.

use std::collections::BTreeMap;

/// Renders `template` with `vars`.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some((tag, consumed)) = parse_tag(after) else {
            // An unterminated tag is kept as written.
            out.push_str(after);
            return out;
        };
        match tag {
            Tag::Variable { name, raw } => {
                let value = vars.get(name).map(String::as_str).unwrap_or("");
                if raw {
                    out.push_str(value);
                } else {
                    escape_html(value, &mut out);
                }
            }
            Tag::Comment => {}
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

enum Tag<'a> {
    Variable { name: &'a str, raw: bool },
    Comment,
}

/// Reads the tag at the start of `text` (which begins with `{{`); returns it
/// and how many bytes it spans.
fn parse_tag(text: &str) -> Option<(Tag<'_>, usize)> {
    if let Some(inner) = text.strip_prefix("{{{") {
        let end = inner.find("}}}")?;
        let name = inner[..end].trim();
        return Some((Tag::Variable { name, raw: true }, 3 + end + 3));
    }
    let inner = &text[2..];
    let end = inner.find("}}")?;
    let body = inner[..end].trim();
    let consumed = 2 + end + 2;
    let tag = if let Some(name) = body.strip_prefix('&') {
        Tag::Variable {
            name: name.trim(),
            raw: true,
        }
    } else if body.starts_with('!') {
        Tag::Comment
    } else {
        Tag::Variable {
            name: body,
            raw: false,
        }
    };
    Some((tag, consumed))
}

/// The escaping mustache applies to `{{ name }}`.
fn escape_html(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Parses one `--var key=value` argument.
pub fn parse_var(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{arg:?} must be formatted as key=value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_with_and_without_spaces() {
        let v = vars(&[("address", "2.2.2.2"), ("name", "web")]);
        assert_eq!(
            render("address: \"{{ address }}\"\nname: {{name}}\n", &v),
            "address: \"2.2.2.2\"\nname: web\n"
        );
    }

    #[test]
    fn names_may_contain_dots() {
        let v = vars(&[("var.with.dots", "1.1.1.1")]);
        assert_eq!(render("a: {{ var.with.dots }}", &v), "a: 1.1.1.1");
    }

    #[test]
    fn unknown_names_render_empty_and_comments_vanish() {
        assert_eq!(render("a: '{{ missing }}'{{! note }}", &vars(&[])), "a: ''");
    }

    #[test]
    fn escapes_like_mustache_unless_raw() {
        let v = vars(&[("x", "a&<b>\"")]);
        assert_eq!(render("{{ x }}", &v), "a&amp;&lt;b&gt;&#34;");
        assert_eq!(render("{{{ x }}}", &v), "a&<b>\"");
        assert_eq!(render("{{& x }}", &v), "a&<b>\"");
    }

    #[test]
    fn unterminated_tag_is_kept() {
        assert_eq!(render("a: {{ x", &vars(&[("x", "1")])), "a: {{ x");
    }

    #[test]
    fn var_argument_needs_key_and_equals() {
        assert_eq!(
            parse_var("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert!(parse_var("novalue").is_err());
        assert!(parse_var("=v").is_err());
    }
}
