//! Where a finding is in the text: the line of a document of a YAML stream, and the line of a
//! field path (`spec.resources[1].patches[0].toFieldPath`) inside it, for `strata validate`.
//!
//! The YAML library gives values without positions, so the text is read again here, line by
//! line: documents are split at `---` lines; a field is found by walking block mappings and
//! sequences by indentation. Where the walk cannot follow (flow style `{…}`/`[…]`, a key in
//! quotes with escapes, a multi-line scalar), the line of the deepest field found is returned,
//! so a finding always points at its document and usually at its field.

/// One segment of a field path.
#[derive(Debug, PartialEq, Eq)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.resources[1].name` → keys and indexes; a bracketed non-number is a key.
fn segments(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = field;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            let token = &inner[..end];
            out.push(match token.parse() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(token.trim_matches(|c| c == '\'' || c == '"')),
            });
            rest = inner[end + 1..].trim_start_matches('.');
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            if end > 0 {
                out.push(Segment::Key(&rest[..end]));
            }
            rest = rest[end..].trim_start_matches('.');
        }
    }
    out
}

/// A line of a document: its 1-based number in the file, and its text.
type Line<'a> = (usize, String, &'a str);

fn is_separator(line: &str) -> bool {
    line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// The lines of document `document` (1-based, counted as the YAML library counts them: a
/// leading `---` opens the first document).
fn document_lines(text: &str, document: usize) -> Vec<(usize, &str)> {
    let mut docs: Vec<Vec<(usize, &str)>> = vec![Vec::new()];
    for (i, line) in text.lines().enumerate() {
        if is_separator(line) {
            let current_has_content = docs
                .last()
                .is_some_and(|d| d.iter().any(|(_, l)| is_content(l)));
            if docs.len() > 1 || current_has_content {
                docs.push(Vec::new());
            } else {
                docs[0].clear();
            }
            // Content after `--- ` on the same line belongs to the new document.
            continue;
        }
        if let Some(d) = docs.last_mut() {
            d.push((i + 1, line));
        }
    }
    docs.into_iter()
        .nth(document.saturating_sub(1))
        .unwrap_or_default()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The key of a `key: value` or `key:` line, unquoted.
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let (key, _) = if let Some(q) = t.strip_prefix('"') {
        let end = q.find('"')?;
        return q[end + 1..]
            .trim_start()
            .starts_with(':')
            .then(|| &q[..end]);
    } else if let Some(q) = t.strip_prefix('\'') {
        let end = q.find('\'')?;
        return q[end + 1..]
            .trim_start()
            .starts_with(':')
            .then(|| &q[..end]);
    } else {
        t.split_once(':')?
    };
    Some(key.trim_end())
}

/// The line of `field` in document `document` of `text`; the document's first line when the
/// field is empty or cannot be followed at all; `None` when there is no such document.
pub fn line_of(text: &str, document: usize, field: &str) -> Option<usize> {
    let lines = document_lines(text, document);
    let first = lines.iter().find(|(_, l)| is_content(l)).map(|(n, _)| *n)?;
    // Block lines with list dashes kept; the walk rewrites `- ` to two spaces when it enters an
    // item, so the item's first key lines up with the others.
    let mut range: Vec<Line<'_>> = lines
        .iter()
        .filter(|(_, l)| is_content(l))
        .map(|(n, l)| (*n, (*l).to_owned(), *l))
        .collect();
    let mut found = first;
    for segment in segments(field) {
        let Some(base) = range.iter().map(|(_, l, _)| indent(l)).min() else {
            break;
        };
        match segment {
            Segment::Key(key) => {
                let Some(at) = range
                    .iter()
                    .position(|(_, l, _)| indent(l) == base && key_of(l) == Some(key))
                else {
                    break;
                };
                found = range[at].0;
                // The value: the lines after the key that are deeper, or a sequence at the
                // key's own indentation.
                let mut value = Vec::new();
                for line in range.iter().skip(at + 1) {
                    let i = indent(&line.1);
                    let dash = line.1.trim_start().starts_with('-');
                    if i > base || (i == base && dash) {
                        value.push(line.clone());
                    } else {
                        break;
                    }
                }
                range = value;
            }
            Segment::Index(n) => {
                let items: Vec<usize> = range
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, l, _))| indent(l) == base && l.trim_start().starts_with('-'))
                    .map(|(i, _)| i)
                    .collect();
                let Some(&start) = items.get(n) else { break };
                let end = items.get(n + 1).copied().unwrap_or(range.len());
                found = range[start].0;
                let mut item: Vec<Line<'_>> = range[start..end].to_vec();
                // `- key: v` → `  key: v`: the item's mapping at one indentation.
                let dashed = &mut item[0].1;
                let at = indent(dashed);
                dashed.replace_range(at..at + 1, " ");
                if item[0].1.trim().is_empty() {
                    item.remove(0);
                }
                range = item;
            }
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "\
# leading comment
---
apiVersion: v1
kind: A
---
apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata:
  name: c
spec:
  resources:
  - name: a
    base: {apiVersion: v1, kind: ConfigMap}
  - name: b
    patches:
      - fromFieldPath: spec.x
        toFieldPath: data.x
      - type: FromCompositeFieldPath
        # a comment
        fromFieldPath: spec.y
";

    #[test]
    fn fields_are_found_at_their_lines() {
        for (document, field, line, reason) in [
            (1, "", 3, "a document's first line, after a leading ---"),
            (2, "", 6, "the second document"),
            (2, "metadata.name", 9, "a nested key"),
            (
                2,
                "spec.resources[1]",
                14,
                "a list item at its key's indentation",
            ),
            (2, "spec.resources[1].name", 14, "the first key of an item"),
            (
                2,
                "spec.resources[1].patches[0].toFieldPath",
                17,
                "a key after the first",
            ),
            (
                2,
                "spec.resources[1].patches[1].fromFieldPath",
                20,
                "past a comment",
            ),
            (
                2,
                "spec.resources[0].base.kind",
                13,
                "flow style: the deepest line found",
            ),
            (2, "spec.nope", 10, "a missing key: its parent"),
        ] {
            assert_eq!(line_of(STREAM, document, field), Some(line), "{reason}");
        }
        assert_eq!(line_of(STREAM, 3, ""), None, "no third document");
    }
}
