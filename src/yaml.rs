//! YAML documents read into typed values, with errors for people: `<file>:<line>:<col>: <key>:
//! <what was expected>, found <what was there>`. The parser's own wording (its option names,
//! Rust type names such as `u64`, snippets headed `<input>`) never reaches the user.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

/// A YAML document that is not what it should be: where, which key, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct YamlError {
    /// The file (or other origin) the text came from.
    pub origin: String,
    /// 1-based line and column of the offending node, when known.
    pub position: Option<(u64, u64)>,
    /// The key path (`slo.latency.threshold`, `routes[1]`), when known.
    pub key: Option<String>,
    /// What was wrong, without position or key.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        match &self.key {
            Some(key) => write!(f, ": {key}: {}", self.message),
            None => write!(f, ": {}", self.message),
        }
    }
}

/// Parses `text` (read from `origin`, named in errors) into a `T`, tracking the key path.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, YamlError> {
    let path = RefCell::new(None);
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            *path.borrow_mut() = Some(e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| describe(&e, text, origin, path.into_inner().as_deref()))
}

/// Describes a serde-saphyr error of `text` for people; `path` is the key path where known
/// (serde_path_to_error's rendering: `.` for the root, `?` for an unknown segment).
pub fn describe(e: &Error, text: &str, origin: &str, path: Option<&str>) -> YamlError {
    let e = original(e);
    let location = e.location().filter(|l| l.line() > 0);
    let position = location.map(|l| (l.line(), l.column()));
    let found = || location.map(|l| scalar_at(text, l.line(), l.column())).unwrap_or_default();
    let known = path.map(|p| p.trim_end_matches(".?").trim_end_matches('?')).filter(|p| !p.is_empty() && *p != ".");
    let mut key = known.map(str::to_string);
    let message = match e {
        Error::DuplicateMappingKey { key: duplicate, .. } => {
            let name = duplicate.clone().unwrap_or_else(found);
            let full = match key.take() {
                Some(parent) => format!("{parent}.{name}"),
                None => name,
            };
            format!("duplicate key `{full}`")
        }
        Error::SerdeUnknownField { field, expected, .. } => {
            // The path already ends with the unknown key; name its parent instead.
            let parent = key.take().and_then(|k| k.rsplit_once('.').map(|(p, _)| p.to_string()));
            let full = parent.map_or_else(|| field.clone(), |p| format!("{p}.{field}"));
            if expected.is_empty() {
                format!("unknown key `{full}`")
            } else {
                format!("unknown key `{full}`; expected one of {}", expected.join(", "))
            }
        }
        Error::SerdeUnknownVariant { expected, .. } => {
            format!("expected one of {}, found {}", expected.join(", "), shown(&found()))
        }
        Error::InvalidScalar { ty, .. } => format!("expected {}, found {}", scalar_type(ty), shown(&found())),
        Error::InvalidBooleanStrict { .. } => format!("expected true or false, found {}", shown(&found())),
        Error::Unexpected { expected, .. } => format!("expected {}, found {}", node_kind(expected), shown(&found())),
        Error::SerdeInvalidType { unexpected, expected, .. }
        | Error::SerdeInvalidValue { unexpected, expected, .. } => {
            format!("expected {}, found {unexpected}", plain_expected(expected))
        }
        Error::Message { msg, .. } if msg == "invalid socket address syntax" => {
            format!("expected an address and port such as 0.0.0.0:15001, found {}", shown(&found()))
        }
        other => UserMessageFormatter.format_message(other).into_owned(),
    };
    YamlError { origin: origin.to_string(), position, key, message }
}

/// The error under serde-saphyr's alias and snippet wrappers.
fn original(mut e: &Error) -> &Error {
    loop {
        match e {
            Error::WithSnippet { error, .. } | Error::AliasError { error, .. } => e = error,
            other => return other,
        }
    }
}

/// The text of the plain scalar (or the start of the node) at a 1-based line and column,
/// without a trailing comment, shortened for a one-line message.
fn scalar_at(text: &str, line: u64, column: u64) -> String {
    let Some(line) = text.lines().nth(line.saturating_sub(1) as usize) else {
        return String::new();
    };
    let before: String = line.chars().take(column.saturating_sub(1) as usize).collect();
    let rest: String = line.chars().skip(column.saturating_sub(1) as usize).collect();
    // A plain scalar ends at a comment, and inside a flow collection at `,`, `]` or `}`; a
    // quoted one at its closing quote; a flow collection is shown as far as the line goes.
    let in_flow = before.contains(['[', '{']);
    let end = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |i| i + 2),
        Some('[' | '{') => rest.find(" #").unwrap_or(rest.len()),
        _ if in_flow => rest.find([',', ']', '}']).into_iter().chain(rest.find(" #")).min().unwrap_or(rest.len()),
        _ => rest.find(" #").unwrap_or(rest.len()),
    };
    let rest = rest[..end].trim();
    match rest.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &rest[..i]),
        None => rest.to_string(),
    }
}

/// A value as written: quoted YAML keeps its quotes, a plain scalar gets double quotes.
fn shown(found: &str) -> Cow<'_, str> {
    if found.is_empty() {
        Cow::Borrowed("nothing")
    } else if found.starts_with(['"', '\'']) {
        Cow::Borrowed(found)
    } else {
        Cow::Owned(format!("{found:?}"))
    }
}

/// What a Rust scalar type accepts, in words.
fn scalar_type(ty: &str) -> &'static str {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" | "floating point" => "a number",
        "bool" | "boolean" => "true or false",
        "char" => "a single character",
        _ => "a different value",
    }
}

/// The parser's event names as YAML node kinds.
fn node_kind(expected: &str) -> &str {
    match expected {
        "mapping start" | "map" => "a mapping of keys (key: value)",
        "sequence start" | "seq" => "a list",
        "string scalar" | "scalar" | "string" => "a single value",
        other => other,
    }
}

/// serde's `expected ...` wording without Rust names: structs and maps are YAML mappings.
fn plain_expected(expected: &str) -> Cow<'_, str> {
    if expected.starts_with("struct ") || expected == "a map" {
        Cow::Borrowed("a mapping of keys (key: value)")
    } else if expected == "a sequence" {
        Cow::Borrowed("a list")
    } else if let Some(name) = expected.strip_prefix("enum ") {
        Cow::Owned(format!("one of the {} values", name.to_lowercase()))
    } else {
        Cow::Borrowed(expected)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: Option<String>,
        count: Option<usize>,
        offset: Option<i32>,
        ratio: Option<f64>,
        on: Option<bool>,
        listen: Option<SocketAddr>,
        list: Option<Vec<String>>,
        inner: Option<Inner>,
        kind: Option<Kind>,
        labels: Option<BTreeMap<String, String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: Option<u32>,
        b: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Tcp,
        Grpc,
    }

    fn err(text: &str) -> String {
        parse::<Doc>(text, "conf.yaml").expect_err(text).to_string()
    }

    #[test]
    fn duplicate_keys_are_named_with_their_path() {
        assert_eq!(err("name: a\nname: b\n"), "conf.yaml:2:1: duplicate key `name`");
        assert_eq!(err("inner:\n  a: 1\n  a: 2\n"), "conf.yaml:3:3: duplicate key `inner.a`");
    }

    #[test]
    fn wrong_types_name_the_key_and_what_was_expected() {
        assert_eq!(
            err("name: a\ncount: abc\n"),
            "conf.yaml:2:8: count: expected a whole number (0 or more), found \"abc\""
        );
        assert_eq!(
            err("count: -1 # comment\n"),
            "conf.yaml:1:8: count: expected a whole number (0 or more), found \"-1\""
        );
        assert_eq!(err("offset: 1.5\n"), "conf.yaml:1:9: offset: expected a whole number, found \"1.5\"");
        assert_eq!(err("ratio: \"x\"\n"), "conf.yaml:1:8: ratio: expected a number, found \"x\"");
        assert_eq!(err("on: 3\n"), "conf.yaml:1:5: on: expected true or false, found \"3\"");
        assert_eq!(
            err("listen: nope\n"),
            "conf.yaml:1:9: listen: expected an address and port such as 0.0.0.0:15001, found \"nope\""
        );
        assert_eq!(err("inner:\n  a: x\n"), "conf.yaml:2:6: inner.a: expected a whole number (0 or more), found \"x\"");
        assert_eq!(err("kind: udp\n"), "conf.yaml:1:7: kind: expected one of tcp, grpc, found \"udp\"");
        assert_eq!(
            err("inner: {a: x, b: y}\n"),
            "conf.yaml:1:12: inner.a: expected a whole number (0 or more), found \"x\""
        );
        assert_eq!(err("count: 'x' # c\n"), "conf.yaml:1:8: count: expected a whole number (0 or more), found 'x'");
    }

    #[test]
    fn wrong_shapes_say_mapping_and_list() {
        assert_eq!(err("inner: 5\n"), "conf.yaml:1:8: inner: expected a mapping of keys (key: value), found \"5\"");
        assert_eq!(err("list: 5\n"), "conf.yaml:1:7: list: expected a list, found \"5\"");
        assert_eq!(err("list: [a, [b]]\n"), "conf.yaml:1:11: list[1]: expected a single value, found \"[b]]\"");
    }

    #[test]
    fn unknown_keys_are_named_with_their_path_and_the_known_ones() {
        let e = err("nme: a\n");
        assert!(e.starts_with("conf.yaml:1:1: unknown key `nme`; expected one of name, count,"), "{e}");
        assert_eq!(err("inner:\n  c: 1\n"), "conf.yaml:2:3: unknown key `inner.c`; expected one of a, b");
    }

    #[test]
    fn no_parser_internals_reach_the_message() {
        for text in [
            "name: a\nname: b\n",
            "count: abc\n",
            "inner: 5\n",
            "inner: [1]\n",
            "labels: [1]\n",
            "name: [\n",
            "kind: [1]\n",
            "name: *x\n",
            "- a\n",
        ] {
            let e = err(text);
            for internal in ["<input>", "DuplicateKeyPolicy", "Options", "u64", "struct ", "Inner", "Doc", "Kind"] {
                assert!(!e.contains(internal), "{text:?}: {e}");
            }
            assert!(e.starts_with("conf.yaml"), "{e}");
        }
    }
}
