//! Field paths: Crossplane's grammar for addressing a value inside a JSON object.
//!
//! `spec.forProvider.tags[0]`, `metadata.annotations['example.org/name']`, `data[.config.yml]`.
//! Segments are separated by `.`; `[n]` is an array index when `n` is an unsigned integer below
//! 2^32, any other bracketed text is a field name (surrounding quotes stripped, dots literal).
//!
//! Reading distinguishes *not found* (a missing key, an index past the end, a null parent) from a
//! *hard error* (reading through the wrong type). Writing creates missing objects and arrays, pads
//! arrays with `null` up to the index (at most [`MAX_INDEX`]), and fails on the wrong type.

use std::fmt;

use serde_json::map::Entry;
use serde_json::{Map, Value};

/// The largest array index a write may create (Crossplane's default).
pub const MAX_INDEX: u32 = 1024;

/// One segment of a field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// An object key (`*` is the wildcard).
    Field(String),
    /// An array index.
    Index(u32),
}

/// A parsed field path. Parse once, use many times.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FieldPath {
    segments: Vec<Segment>,
    has_wildcard: bool,
}

/// Why a field path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path {path:?}: {reason} at position {position}")]
pub struct ParseError {
    /// The path as written.
    pub path: String,
    /// What is wrong (`unterminated '['`).
    pub reason: &'static str,
    /// The byte offset in `path` where it went wrong.
    pub position: usize,
}

/// Why a read or a write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The value is not there (yet). Callers usually skip or wait.
    #[error("{path}: {what}")]
    NotFound {
        /// The path up to the segment not found, or up to its `null` parent.
        path: String,
        /// Why it is not there (`no such field`).
        what: &'static str,
    },
    /// The path runs through a value of the wrong type, or beyond the index cap.
    #[error("{0}")]
    Invalid(String),
}

impl AccessError {
    /// True when the value is missing rather than unreachable: the caller may wait for it.
    pub fn is_not_found(&self) -> bool {
        matches!(self, AccessError::NotFound { .. })
    }
}

impl FieldPath {
    /// Parses Crossplane's field path grammar.
    pub fn parse(path: &str) -> Result<Self, ParseError> {
        let err = |reason, position| ParseError {
            path: path.to_owned(),
            reason,
            position,
        };
        let bytes = path.as_bytes();
        let mut segments = Vec::new();
        let mut i = 0;
        // `expect_segment`: a segment must start here (start of input or after a '.').
        let mut expect_segment = true;
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    if expect_segment {
                        return Err(err("unexpected '.'", i));
                    }
                    if i + 1 == bytes.len() {
                        return Err(err("trailing '.'", i));
                    }
                    if bytes[i + 1] == b'[' {
                        return Err(err("unexpected '[' after '.'", i + 1));
                    }
                    expect_segment = true;
                    i += 1;
                }
                b'[' => {
                    if i == 0 {
                        // A leading bracket is allowed: `[a].b` addresses field `a`.
                    }
                    let start = i + 1;
                    let Some(rel) = path[start..].find(']') else {
                        return Err(err("unterminated '['", i));
                    };
                    let end = start + rel;
                    let inner = &path[start..end];
                    if inner.is_empty() {
                        return Err(err("empty '[]'", i));
                    }
                    if inner.contains('[') {
                        return Err(err("nested '['", start + inner.find('[').unwrap_or(0)));
                    }
                    segments.push(bracket_segment(inner));
                    i = end + 1;
                    if i < bytes.len() && bytes[i] != b'.' && bytes[i] != b'[' {
                        return Err(err("expected '.' or '[' after ']'", i));
                    }
                    expect_segment = false;
                }
                b']' => return Err(err("unexpected ']'", i)),
                _ => {
                    let start = i;
                    while i < bytes.len() && !matches!(bytes[i], b'.' | b'[' | b']') {
                        i += 1;
                    }
                    segments.push(Segment::Field(path[start..i].to_owned()));
                    expect_segment = false;
                }
            }
        }
        let has_wildcard = segments
            .iter()
            .any(|s| matches!(s, Segment::Field(f) if f == "*"));
        Ok(Self {
            segments,
            has_wildcard,
        })
    }

    /// The segments in order; empty for the empty path, which addresses the whole value.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// True for the empty path (the whole value).
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when a segment is `*` (written `[*]` or `.*`).
    pub fn has_wildcard(&self) -> bool {
        self.has_wildcard
    }

    /// Reads the value at this path.
    pub fn get<'a>(&self, root: &'a Value) -> Result<&'a Value, AccessError> {
        let mut current = root;
        for (i, segment) in self.segments.iter().enumerate() {
            current = match (segment, current) {
                (_, Value::Null) => {
                    return Err(AccessError::NotFound {
                        path: self.prefix(i),
                        what: "nil parent",
                    });
                }
                (Segment::Field(f), Value::Object(map)) => match map.get(f) {
                    Some(v) => v,
                    None => {
                        return Err(AccessError::NotFound {
                            path: self.prefix(i + 1),
                            what: "no such field",
                        });
                    }
                },
                (Segment::Field(_), _) => {
                    return Err(AccessError::Invalid(format!(
                        "{}: not an object",
                        self.prefix(i)
                    )));
                }
                (Segment::Index(n), Value::Array(items)) => match items.get(*n as usize) {
                    Some(v) => v,
                    None => {
                        return Err(AccessError::NotFound {
                            path: self.prefix(i + 1),
                            what: "no such element",
                        });
                    }
                },
                (Segment::Index(_), _) => {
                    return Err(AccessError::Invalid(format!(
                        "{}: not an array",
                        self.prefix(i)
                    )));
                }
            };
        }
        Ok(current)
    }

    /// Reads the value at this path, mapping not-found to `None`.
    pub fn get_opt<'a>(&self, root: &'a Value) -> Result<Option<&'a Value>, AccessError> {
        match self.get(root) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `value` at this path, creating objects and arrays on the way.
    ///
    /// `*` segments are not expanded here (see [`FieldPath::expand_wildcards`]); they are literal
    /// field names to this function.
    pub fn set(&self, root: &mut Value, value: Value) -> Result<(), AccessError> {
        if self.segments.is_empty() {
            *root = value;
            return Ok(());
        }
        self.set_from(root, 0, value)
    }

    /// Replaces the value at this path when every segment is a field that exists (below
    /// objects), as [`FieldPath::set`] would; otherwise changes nothing and gives `value` back.
    pub fn replace_existing(&self, root: &mut Value, value: Value) -> Result<(), Value> {
        let mut current = root;
        for segment in &self.segments {
            let Segment::Field(f) = segment else {
                return Err(value);
            };
            match current {
                Value::Object(map) => match map.get_mut(f.as_str()) {
                    Some(next) => current = next,
                    None => return Err(value),
                },
                _ => return Err(value),
            }
        }
        *current = value;
        Ok(())
    }

    /// Writes `value` at segments `i..` below `current` (segment `i` exists). An existing key
    /// costs one map lookup and no allocation; a missing one is created with what the next
    /// segment needs.
    fn set_from(&self, current: &mut Value, i: usize, value: Value) -> Result<(), AccessError> {
        let next = self.segments.get(i + 1);
        match &self.segments[i] {
            Segment::Field(f) => {
                let Value::Object(map) = current else {
                    return Err(AccessError::Invalid(format!(
                        "{} is not an object",
                        self.prefix(i)
                    )));
                };
                let Some(next) = next else {
                    // The last segment is often a new field: one lookup that inserts.
                    match map.entry(f.clone()) {
                        Entry::Occupied(mut slot) => {
                            slot.insert(value);
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(value);
                        }
                    }
                    return Ok(());
                };
                if let Some(slot) = map.get_mut(f.as_str()) {
                    return self.set_from(slot, i + 1, value);
                }
                let fresh = match next {
                    Segment::Index(_) => Value::Array(Vec::new()),
                    Segment::Field(_) => Value::Object(Map::new()),
                };
                let slot = map.entry(f.clone()).or_insert(fresh);
                self.set_from(slot, i + 1, value)
            }
            Segment::Index(n) => {
                if *n > MAX_INDEX {
                    return Err(AccessError::Invalid(format!(
                        "{}: index {n} is greater than max allowed index {MAX_INDEX}",
                        self.prefix(i)
                    )));
                }
                let Value::Array(items) = current else {
                    return Err(AccessError::Invalid(format!(
                        "{} is not an array",
                        self.prefix(i)
                    )));
                };
                let n = *n as usize;
                if items.len() <= n {
                    items.resize(n + 1, Value::Null);
                }
                let slot = &mut items[n];
                match next {
                    None => {
                        *slot = value;
                        Ok(())
                    }
                    Some(next) => {
                        if slot.is_null() {
                            *slot = match next {
                                Segment::Index(_) => Value::Array(Vec::new()),
                                Segment::Field(_) => Value::Object(Map::new()),
                            };
                        }
                        self.set_from(slot, i + 1, value)
                    }
                }
            }
        }
    }

    /// Expands every `*` segment against `root`: arrays by index, objects by key (sorted), only
    /// where the whole resulting path exists. Returns no paths when nothing matches, and
    /// not-found when a `*` stands on a null value.
    pub fn expand_wildcards(&self, root: &Value) -> Result<Vec<FieldPath>, AccessError> {
        let mut out = Vec::new();
        expand(root, &self.segments, 0, &mut out)?;
        Ok(out
            .into_iter()
            .map(|segments| FieldPath {
                segments,
                has_wildcard: false,
            })
            .collect())
    }

    /// The path of the first `n` segments, formatted for messages.
    fn prefix(&self, n: usize) -> String {
        format_segments(&self.segments[..n.min(self.segments.len())])
    }

    /// True when one path is a prefix of the other (they address overlapping data).
    pub fn overlaps(&self, other: &FieldPath) -> bool {
        let n = self.segments.len().min(other.segments.len());
        self.segments[..n]
            .iter()
            .zip(&other.segments[..n])
            .all(|(a, b)| {
                a == b
                    || matches!(a, Segment::Field(f) if f == "*")
                    || matches!(b, Segment::Field(f) if f == "*")
            })
    }
}

fn expand(
    root: &Value,
    segments: &[Segment],
    from: usize,
    out: &mut Vec<Vec<Segment>>,
) -> Result<(), AccessError> {
    for i in from..segments.len() {
        let prefix = FieldPath {
            segments: segments[..i].to_vec(),
            has_wildcard: false,
        };
        if matches!(&segments[i], Segment::Field(f) if f == "*") {
            let parent = match prefix.get(root) {
                Ok(v) => v,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            };
            let replacements: Vec<Segment> = match parent {
                Value::Array(items) => (0..items.len()).map(|n| Segment::Index(n as u32)).collect(),
                Value::Object(map) => map.keys().map(|k| Segment::Field(k.clone())).collect(),
                // crossplane-runtime: a wildcard over nil is not found, not a misuse.
                Value::Null => {
                    return Err(AccessError::NotFound {
                        path: format_segments(&segments[..i]),
                        what: "null value",
                    });
                }
                _ => {
                    return Err(AccessError::Invalid(format!(
                        "{}: unexpected wildcard usage",
                        format_segments(&segments[..i])
                    )));
                }
            };
            for replacement in replacements {
                let mut expanded = segments.to_vec();
                expanded[i] = replacement;
                expand(root, &expanded, i + 1, out)?;
            }
            return Ok(());
        }
    }
    let full = FieldPath {
        segments: segments.to_vec(),
        has_wildcard: false,
    };
    match full.get(root) {
        Ok(_) => out.push(segments.to_vec()),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

fn bracket_segment(inner: &str) -> Segment {
    if let Ok(n) = inner.parse::<u32>()
        && inner.bytes().all(|b| b.is_ascii_digit())
    {
        return Segment::Index(n);
    }
    let unquoted = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
        .unwrap_or(inner);
    Segment::Field(unquoted.to_owned())
}

/// Formats segments the way Crossplane prints them: `a.b[0].c`, `metadata.annotations[x.y]`.
pub fn format_segments(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Index(n) => {
                out.push('[');
                out.push_str(&n.to_string());
                out.push(']');
            }
            Segment::Field(f) if f.is_empty() => out.push_str("['']"),
            Segment::Field(f) if f == "*" => out.push_str("[*]"),
            Segment::Field(f) if f.contains('.') || f.contains('[') || f.contains(']') => {
                out.push('[');
                out.push_str(f);
                out.push(']');
            }
            Segment::Field(f) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(f);
            }
        }
    }
    out
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_segments(&self.segments))
    }
}

impl std::str::FromStr for FieldPath {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldPath::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(path: &str) -> Vec<Segment> {
        FieldPath::parse(path).expect("parses").segments
    }
    fn f(s: &str) -> Segment {
        Segment::Field(s.to_owned())
    }

    #[test]
    fn parses_the_grammar() {
        let cases: &[(&str, Vec<Segment>, &str)] = &[
            ("spec", vec![f("spec")], "single field"),
            (
                "spec.forProvider.size",
                vec![f("spec"), f("forProvider"), f("size")],
                "dotted",
            ),
            (
                "spec.items[0].name",
                vec![f("spec"), f("items"), Segment::Index(0), f("name")],
                "index",
            ),
            (
                "metadata.annotations['example.org/name']",
                vec![f("metadata"), f("annotations"), f("example.org/name")],
                "single-quoted key keeps dots",
            ),
            (
                "metadata.labels[\"a.b\"]",
                vec![f("metadata"), f("labels"), f("a.b")],
                "double-quoted key",
            ),
            (
                "data[.config.yml]",
                vec![f("data"), f(".config.yml")],
                "unquoted bracket key keeps dots",
            ),
            (
                "spec[containers][0].name",
                vec![f("spec"), f("containers"), Segment::Index(0), f("name")],
                "bracketed field names",
            ),
            (
                "a[-1]",
                vec![f("a"), f("-1")],
                "negative numbers are field names",
            ),
            (
                "a[1.5]",
                vec![f("a"), f("1.5")],
                "fractions are field names",
            ),
            (
                "a[4294967296]",
                vec![f("a"), f("4294967296")],
                "2^32 is a field name",
            ),
            (
                "a[4294967295]",
                vec![f("a"), Segment::Index(u32::MAX)],
                "2^32-1 is an index",
            ),
            (
                "a[+1]",
                vec![f("a"), f("+1")],
                "a signed number is a field name",
            ),
            ("a[*].b", vec![f("a"), f("*"), f("b")], "wildcard"),
            ("[a].b", vec![f("a"), f("b")], "leading bracket"),
            (
                "a[0][1]",
                vec![f("a"), Segment::Index(0), Segment::Index(1)],
                "consecutive indexes",
            ),
            ("", vec![], "empty path addresses the whole object"),
        ];
        for (path, want, why) in cases {
            assert_eq!(&fields(path), want, "{why}: {path}");
        }
    }

    #[test]
    fn rejects_malformed_paths() {
        for (path, why) in [
            (".a", "leading dot"),
            ("a.", "trailing dot"),
            ("a..b", "double dot"),
            ("a[]", "empty brackets"),
            ("a.[0]", "dot before bracket"),
            ("a[0", "unclosed bracket"),
            ("a[b[0]]", "nested brackets"),
            ("a]b", "stray closing bracket"),
            ("a[0]b", "text after bracket"),
        ] {
            assert!(
                FieldPath::parse(path).is_err(),
                "{why}: {path} should not parse"
            );
        }
    }

    #[test]
    fn get_distinguishes_not_found_from_wrong_type() {
        let v = json!({"spec": {"items": [1, {"x": null}], "s": "str", "n": null}});
        let get = |p: &str| FieldPath::parse(p).expect("parses").get(&v).cloned();
        assert_eq!(get("spec.items[0]"), Ok(json!(1)));
        assert!(get("spec.missing").expect_err("missing").is_not_found());
        assert!(get("spec.items[5]").expect_err("past end").is_not_found());
        assert!(get("spec.n.x").expect_err("nil parent").is_not_found());
        assert!(
            get("spec.items[1].x.y")
                .expect_err("nil parent deep")
                .is_not_found()
        );
        let e = get("spec.s.x").expect_err("through string");
        assert_eq!(e, AccessError::Invalid("spec.s: not an object".into()));
        let e = get("spec.s[0]").expect_err("index a string");
        assert_eq!(e, AccessError::Invalid("spec.s: not an array".into()));
        assert!(
            !get("spec.items.x")
                .expect_err("field of array")
                .is_not_found()
        );
    }

    #[test]
    fn set_creates_and_pads() {
        let mut v = json!({});
        FieldPath::parse("spec.a[2].b")
            .expect("parses")
            .set(&mut v, json!("x"))
            .expect("sets");
        assert_eq!(v, json!({"spec": {"a": [null, null, {"b": "x"}]}}));
        FieldPath::parse("spec.a[0]")
            .expect("parses")
            .set(&mut v, json!(1))
            .expect("sets");
        assert_eq!(v, json!({"spec": {"a": [1, null, {"b": "x"}]}}));
        FieldPath::parse("spec.m[k.with.dots]")
            .expect("parses")
            .set(&mut v, json!(true))
            .expect("sets");
        assert_eq!(v["spec"]["m"]["k.with.dots"], json!(true));
    }

    #[test]
    fn set_enforces_the_index_cap_and_types() {
        let mut v = json!({"s": "x", "a": []});
        let set = |v: &mut Value, p: &str| FieldPath::parse(p).expect("parses").set(v, json!(1));
        assert!(set(&mut v, "a[1024]").is_ok(), "1024 is allowed");
        assert!(set(&mut v, "a[1025]").is_err(), "1025 is over the cap");
        assert!(set(&mut v, "s.x").is_err(), "through a string");
        assert!(set(&mut v, "s[0]").is_err(), "index into a string");
        let mut n = json!({"a": null});
        assert!(
            set(&mut n, "a.b").is_err(),
            "an explicit null is the wrong type, as in Crossplane"
        );
    }

    #[test]
    fn wildcards_expand_only_where_the_rest_exists() {
        let v = json!({"items": [{"name": "a"}, {"other": 1}, {"name": "c"}], "m": {"x": {"name": 1}, "y": {}}});
        let expand = |p: &str| {
            FieldPath::parse(p)
                .expect("parses")
                .expand_wildcards(&v)
                .expect("expands")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            expand("items[*].name"),
            vec!["items[0].name", "items[2].name"]
        );
        assert_eq!(expand("m[*].name"), vec!["m.x.name"]);
        assert_eq!(expand("missing[*].name"), Vec::<String>::new());
        assert!(
            FieldPath::parse("items[0].name[*]")
                .expect("parses")
                .expand_wildcards(&v)
                .is_err()
        );
    }

    #[test]
    fn formats_like_crossplane() {
        for p in [
            "spec.items[0].name",
            "metadata.annotations[example.org/name]",
            "a",
        ] {
            assert_eq!(FieldPath::parse(p).expect("parses").to_string(), p);
        }
    }

    #[test]
    fn a_wildcard_segment_prints_in_brackets_like_crossplane() {
        let p = FieldPath::parse("spec.containers[*].image").expect("parses");
        assert_eq!(p.to_string(), "spec.containers[*].image");
    }

    #[test]
    fn the_index_cap_error_names_the_array_once() {
        let mut v = json!({});
        let err = FieldPath::parse("spec.items[1025]")
            .expect("parses")
            .set(&mut v, json!(1))
            .expect_err("over the cap");
        assert_eq!(
            err.to_string(),
            "spec.items: index 1025 is greater than max allowed index 1024"
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics_and_round_trips(s in "[a-z0-9.\\[\\]'\"*-]{0,24}") {
            if let Ok(p) = FieldPath::parse(&s) {
                let again = FieldPath::parse(&p.to_string());
                proptest::prop_assert!(again.is_ok(), "formatted path {} of {} must parse", p, s);
            }
        }
    }
}
