//! `--dataplane-var k=v`: Kuma renders the Dataplane template as mustache.
//! We support what Dataplane templates use: `{{ name }}` (HTML-escaped, as
//! mustache does), `{{{ name }}}` and `{{& name }}` (raw), `{{! comment }}`.
//! Unknown names render empty, as in mustache.

use std::collections::BTreeMap;

pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let (raw, open, close) = if tail.starts_with("{{{") {
            (true, 3, "}}}")
        } else {
            (false, 2, "}}")
        };
        let Some(end) = tail[open..].find(close) else {
            // An unterminated tag stays as written.
            out.push_str(tail);
            return out;
        };
        let body = tail[open..open + end].trim();
        if !body.starts_with('!') {
            let (name, raw) = match body.strip_prefix('&') {
                Some(name) => (name.trim(), true),
                None => (body, raw),
            };
            let value = vars.get(name).map(String::as_str).unwrap_or("");
            if raw {
                out.push_str(value);
            } else {
                escape_html(value, &mut out);
            }
        }
        rest = &tail[open + end + close.len()..];
    }
    out.push_str(rest);
    out
}

fn escape_html(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Parses one `key=value` of `--dataplane-var`.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s} must be formatted as key=value"))?;
    Ok((k.to_string(), v.to_string()))
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
    fn variables_are_replaced_with_and_without_spaces() {
        let t = "name: {{ name }}\naddress: {{address}}\nport: {{ port }}";
        let out = render(
            t,
            &vars(&[("name", "web-1"), ("address", "10.0.0.1"), ("port", "8080")]),
        );
        assert_eq!(out, "name: web-1\naddress: 10.0.0.1\nport: 8080");
    }

    #[test]
    fn unknown_names_render_empty_and_comments_vanish() {
        assert_eq!(render("a{{ x }}b{{! note }}c", &vars(&[])), "abc");
    }

    #[test]
    fn escaping_follows_mustache() {
        let v = vars(&[("x", "<a&b>")]);
        assert_eq!(render("{{ x }}", &v), "&lt;a&amp;b&gt;");
        assert_eq!(render("{{{ x }}}", &v), "<a&b>");
        assert_eq!(render("{{& x }}", &v), "<a&b>");
    }

    #[test]
    fn unterminated_tag_is_kept() {
        assert_eq!(render("a {{ b", &vars(&[("b", "1")])), "a {{ b");
    }

    #[test]
    fn vars_need_an_equals_sign() {
        assert_eq!(parse_var("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_var("nope").is_err());
    }
}
