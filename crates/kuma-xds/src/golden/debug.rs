//! A reader for the `{:#?}` text of prost messages: structs, tuples, lists,
//! maps, strings, numbers and bare identifiers.

use super::GoldenError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `Name { field: value, .. }` (a message with no fields prints as a bare `Name`).
    Struct(String, Vec<(String, Node)>),
    /// `Name(value, ..)`: `Some(..)` and oneof variants.
    Tuple(String, Vec<Node>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Str(String),
    Number(String),
    /// `None`, `true`, enum variants, fieldless messages.
    Ident(String),
}

pub(crate) fn parse(text: &str) -> Result<Node, GoldenError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
    };
    let node = p.value()?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(p.error("trailing text"));
    }
    Ok(node)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn error(&self, message: &str) -> GoldenError {
        GoldenError::Parse {
            offset: self.pos,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), GoldenError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {c:?}")))
        }
    }

    /// Consumes `c` if it is next (after whitespace).
    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Node, GoldenError> {
        self.skip_ws();
        match self.peek() {
            Some('"') => self.string().map(Node::Str),
            Some('[') => {
                self.pos += 1;
                let items = self.items(']', Self::value)?;
                Ok(Node::List(items))
            }
            Some('{') => {
                self.pos += 1;
                let entries = self.items('}', |p| {
                    let k = p.value()?;
                    p.expect(':')?;
                    Ok((k, p.value()?))
                })?;
                Ok(Node::Map(entries))
            }
            Some(c) if c == '-' || c.is_ascii_digit() => Ok(Node::Number(self.number())),
            Some(c) if c.is_alphabetic() || c == '_' => {
                let name = self.ident();
                if self.eat('{') {
                    let fields = self.items('}', |p| {
                        p.skip_ws();
                        let f = p.ident();
                        if f.is_empty() {
                            return Err(p.error("expected a field name"));
                        }
                        p.expect(':')?;
                        Ok((f, p.value()?))
                    })?;
                    Ok(Node::Struct(name, fields))
                } else if self.eat('(') {
                    let items = self.items(')', Self::value)?;
                    Ok(Node::Tuple(name, items))
                } else {
                    Ok(Node::Ident(name))
                }
            }
            _ => Err(self.error("expected a value")),
        }
    }

    /// Comma-separated items up to `close` (a trailing comma allowed).
    fn items<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, GoldenError>,
    ) -> Result<Vec<T>, GoldenError> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(out);
            }
            out.push(item(self)?);
            if !self.eat(',') {
                self.expect(close)?;
                return Ok(out);
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '#')
        {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        // Raw identifiers (`r#type`) print with their prefix.
        s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
    }

    fn number(&mut self) -> String {
        let start = self.pos;
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn string(&mut self) -> Result<String, GoldenError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '0' => out.push('\0'),
                        'u' => out.push(self.unicode_escape()?),
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// `\u{1f600}`, the leading `\u` already read.
    fn unicode_escape(&mut self) -> Result<char, GoldenError> {
        self.expect('{')?;
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex: String = self.chars[start..self.pos].iter().collect();
        self.expect('}')?;
        u32::from_str_radix(&hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.error("bad unicode escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Sample {
        r#type: i32,
        name: String,
        inner: Option<Inner>,
        list: Vec<u8>,
        map: std::collections::BTreeMap<String, f64>,
    }

    #[derive(Debug)]
    struct Inner;

    #[test]
    fn reads_what_debug_writes() {
        let s = Sample {
            r#type: -3,
            name: "a \"quoted\"\n\u{7f} name".into(),
            inner: Some(Inner),
            list: vec![1, 2],
            map: [("k".to_string(), 1.5e-7)].into(),
        };
        let node = parse(&format!("{s:#?}")).expect("parses");
        let Node::Struct(name, fields) = node else {
            panic!("struct expected");
        };
        assert_eq!(name, "Sample");
        assert_eq!(fields[0], ("type".into(), Node::Number("-3".into())));
        assert_eq!(fields[1].1, Node::Str(s.name.clone()));
        assert_eq!(
            fields[2].1,
            Node::Tuple("Some".into(), vec![Node::Ident("Inner".into())])
        );
        assert_eq!(
            fields[3].1,
            Node::List(vec![Node::Number("1".into()), Node::Number("2".into())])
        );
        assert_eq!(
            fields[4].1,
            Node::Map(vec![(Node::Str("k".into()), Node::Number("1.5e-7".into()))])
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("Foo { a: }").is_err());
        assert!(parse("\"open").is_err());
    }
}
