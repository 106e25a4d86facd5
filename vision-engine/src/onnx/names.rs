//! Ultralytics' class names. Its exporter stores `str(model.names)` under the metadata key
//! `names`: a Python dict literal such as `{0: 'person', 1: "o'brien"}`, quoted and escaped the
//! way Python's `repr` does it.

use super::{Model, OnnxError};

/// The class names of an Ultralytics export, indexed by class id; `Ok(None)` without a `names`
/// entry. Ids must be exactly `0..n` (in any order), as the detector's output rows are.
pub fn class_names(model: &Model) -> Result<Option<Vec<String>>, OnnxError> {
    let Some(literal) = model.metadata_value("names") else {
        return Ok(None);
    };
    parse_names(literal)
        .map(Some)
        .map_err(|e| OnnxError::invalid(e).within(r#"metadata_props "names""#))
}

fn parse_names(literal: &str) -> Result<Vec<String>, String> {
    let mut p = Parser {
        rest: literal,
        literal,
    };
    let mut entries: Vec<(u64, String)> = Vec::new();
    p.expect('{')?;
    loop {
        p.skip_space();
        if p.eat('}') {
            break;
        }
        let id = p.id()?;
        p.expect(':')?;
        p.skip_space();
        entries.push((id, p.string()?));
        p.skip_space();
        // Python allows a trailing comma, so `,}` is fine too.
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    p.skip_space();
    if !p.rest.is_empty() {
        return Err(p.unexpected("nothing after the closing '}'"));
    }
    entries.sort_by_key(|&(id, _)| id);
    let mut names = Vec::with_capacity(entries.len());
    for (expected, (id, name)) in (0u64..).zip(entries) {
        if id != expected {
            return Err(if id < expected {
                format!("class id {id} appears twice")
            } else {
                format!("class ids are not contiguous: {expected} is missing")
            });
        }
        names.push(name);
    }
    Ok(names)
}

struct Parser<'a> {
    rest: &'a str,
    literal: &'a str,
}

impl Parser<'_> {
    fn offset(&self) -> usize {
        self.literal.len() - self.rest.len()
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.rest.chars().next() {
            Some(c) => format!("expected {wanted} at byte {}, found {c:?}", self.offset()),
            None => format!("expected {wanted}, found the end"),
        }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_space();
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("{c:?}")))
        }
    }

    fn id(&mut self) -> Result<u64, String> {
        let digits = self.rest.len()
            - self
                .rest
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let id = self.rest[..digits]
            .parse()
            .map_err(|_| self.unexpected("a class id"))?;
        self.rest = &self.rest[digits..];
        Ok(id)
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = match self.rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.unexpected("a quoted class name")),
        };
        let start = self.offset();
        let mut chars = self.rest[1..].char_indices();
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    // Both quotes are one byte: skip the opening one, the text and the closing one.
                    self.rest = &self.rest[i + 2..];
                    return Ok(out);
                }
                '\\' => {
                    let escape = chars.next().map(|(_, e)| e);
                    out.push(match escape {
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        Some('"') => '"',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some(e @ ('x' | 'u' | 'U')) => {
                            let width = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String = chars.by_ref().take(width).map(|(_, h)| h).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == width)
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    format!("bad escape \\{e}{hex} in the string at byte {start}")
                                })?
                        }
                        Some(e) => {
                            return Err(format!(
                                "unsupported escape \\{e} in the string at byte {start}"
                            ));
                        }
                        None => break,
                    });
                }
                c => out.push(c),
            }
        }
        Err(format!("unterminated string at byte {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_names;

    #[test]
    fn python_reprs_of_names_dicts() {
        assert_eq!(
            parse_names("{0: 'person', 1: 'bicycle', 2: \"o'brien\"}").unwrap(),
            ["person", "bicycle", "o'brien"]
        );
        assert_eq!(
            parse_names(
                r#"{0: 'it\'s "x"', 1: 'a\\b', 2: 'tab\there', 3: '\x01\u200b\U0001f600'}"#
            )
            .unwrap(),
            ["it's \"x\"", "a\\b", "tab\there", "\u{1}\u{200b}\u{1f600}"]
        );
        assert_eq!(parse_names("{1:'b',0:'a',}").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_names(" {0: 'café', 1: '日本'} ").unwrap(),
            ["café", "日本"]
        );
        assert_eq!(parse_names("{}").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn malformed_literals_are_errors_that_say_where() {
        for (literal, message) in [
            (
                "{0: 'a', 2: 'c'}",
                "class ids are not contiguous: 1 is missing",
            ),
            ("{1: 'b'}", "class ids are not contiguous: 0 is missing"),
            ("{0: 'a', 0: 'b'}", "class id 0 appears twice"),
            ("{0: 'a'", "expected '}', found the end"),
            ("{0: 'a}", "unterminated string at byte 4"),
            (
                "{0: a}",
                "expected a quoted class name at byte 4, found 'a'",
            ),
            ("{x: 'a'}", "expected a class id at byte 1, found 'x'"),
            ("{-1: 'a'}", "expected a class id at byte 1, found '-'"),
            (
                "{0: 'a'} x",
                "expected nothing after the closing '}' at byte 9, found 'x'",
            ),
            ("['a', 'b']", "expected '{' at byte 0, found '['"),
            (
                r"{0: '\q'}",
                "unsupported escape \\q in the string at byte 4",
            ),
            (r"{0: '\x4'}", "bad escape \\x4' in the string at byte 4"),
            (
                r"{0: '\ud800'}",
                "bad escape \\ud800 in the string at byte 4",
            ),
            (r"{0: 'a\", "unterminated string at byte 4"),
            (
                "{99999999999999999999: 'a'}",
                "expected a class id at byte 1, found '9'",
            ),
        ] {
            assert_eq!(parse_names(literal), Err(message.to_owned()), "{literal}");
        }
    }
}
