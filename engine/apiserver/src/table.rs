//! `meta.k8s.io/v1 Table` output (`Accept: application/json;as=Table;...`), what `kubectl get`
//! prints: built-in columns per kind, `additionalPrinterColumns` for custom resources.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::resource::{PrinterColumn, ResourceType};

/// Whether an Accept header asks for a Table.
pub(crate) fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

struct Column {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    cell: Cell,
}

enum Cell {
    Name,
    Age,
    Path(String),
    DataCount,
    Builtin(crate::printers::CellFn),
}

fn column(name: &str, type_: &str, cell: Cell) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: String::new(),
        priority: 0,
        cell,
    }
}

fn columns(rt: &ResourceType, version: &str) -> Vec<Column> {
    let name_col = || {
        let mut c = column("Name", "string", Cell::Name);
        c.format = "name".into();
        c.description = "Name must be unique within a namespace.".into();
        c
    };
    if !rt.builtin {
        let printer = rt
            .version(version)
            .map(|v| v.printer_columns.clone())
            .unwrap_or_default();
        if printer.is_empty() {
            return vec![name_col(), column("Age", "date", Cell::Age)];
        }
        let mut cols = vec![name_col()];
        cols.extend(printer.into_iter().map(|p: PrinterColumn| Column {
            cell: if p.json_path == ".metadata.creationTimestamp" {
                Cell::Age
            } else {
                Cell::Path(p.json_path)
            },
            name: p.name,
            type_: p.type_,
            format: p.format,
            description: p.description,
            priority: p.priority,
        }));
        return cols;
    }
    if let Some(builtin) = crate::printers::columns(&rt.group, &rt.resource) {
        return builtin
            .into_iter()
            .map(|c| Column {
                name: c.name.into(),
                type_: c.type_.into(),
                format: if c.name == "Name" {
                    "name".into()
                } else {
                    String::new()
                },
                description: String::new(),
                priority: c.priority,
                cell: Cell::Builtin(c.cell),
            })
            .collect();
    }
    let mut cols = vec![name_col()];
    match (rt.group.as_str(), rt.resource.as_str()) {
        ("", "namespaces") => cols.push(column(
            "Status",
            "string",
            Cell::Path(".status.phase".into()),
        )),
        ("", "secrets") => {
            cols.push(column("Type", "string", Cell::Path(".type".into())));
            cols.push(column("Data", "string", Cell::DataCount));
        }
        ("", "configmaps") => cols.push(column("Data", "string", Cell::DataCount)),
        _ => {}
    }
    if rt.resource == "customresourcedefinitions" {
        cols.push(column(
            "Created At",
            "date",
            Cell::Path(".metadata.creationTimestamp".into()),
        ));
        return cols;
    }
    cols.push(column("Age", "string", Cell::Age));
    cols
}

fn cell_value(cell: &Cell, obj: &Value, now: jiff::Timestamp) -> Value {
    match cell {
        Cell::Name => obj
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
        Cell::Age => json!(
            obj.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .map(|t| crate::printers::since(t, now))
                .unwrap_or_else(|| "<unknown>".into())
        ),
        Cell::DataCount => {
            let count = |k: &str| obj.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
            json!(count("data") + count("binaryData") + count("stringData"))
        }
        Cell::Builtin(f) => f(obj, now),
        Cell::Path(path) => {
            let found = crate::table::jsonpath(obj, path);
            match found.as_slice() {
                [] => Value::Null,
                [one] => (*one).clone(),
                many => json!(many.iter().map(|v| plain(v)).collect::<Vec<_>>().join(",")),
            }
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Evaluates a printer column's JSONPath (Kubernetes' dialect: `.a.b`, `[n]`, `[*]`,
/// `[?(@.k=="v")]`, `\.` for a dot inside a key) with `jsonpath-rust`, after writing it in
/// RFC 9535 form: every member as a bracketed name, so keys like `strata.dev/external-name`
/// need no escaping there. A path it cannot read matches nothing.
pub(crate) fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    use jsonpath_rust::JsonPath;
    let Some(query) = rfc9535(path) else {
        return Vec::new();
    };
    obj.query(&query).unwrap_or_default()
}

/// A Kubernetes JSONPath (`{.a.b\.c[0]}`) as an RFC 9535 query (`$['a']['b.c'][0]`).
fn rfc9535(path: &str) -> Option<String> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path)
        .trim();
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut out = String::from("$");
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if chars.peek() == Some(&'.') {
                    chars.next();
                    out.push_str("..");
                }
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    match n {
                        '\\' => {
                            chars.next();
                            name.push(chars.next()?);
                        }
                        '.' | '[' => break,
                        _ => {
                            name.push(n);
                            chars.next();
                        }
                    }
                }
                match name.as_str() {
                    "" if out.ends_with("..") => {}
                    "" => return None,
                    "*" => out.push_str("[*]"),
                    _ => {
                        let quoted = name.replace('\\', "\\\\").replace('\'', "\\'");
                        out.push_str(&format!("['{quoted}']"));
                    }
                }
            }
            '[' => {
                // Copied up to its matching bracket (quotes and nested brackets respected).
                let (mut depth, mut quote) = (1, None::<char>);
                out.push('[');
                for n in chars.by_ref() {
                    out.push(n);
                    match (quote, n) {
                        (Some(q), n) if n == q => quote = None,
                        (Some(_), _) => {}
                        (None, '"' | '\'') => quote = Some(n),
                        (None, '[') => depth += 1,
                        (None, ']') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if depth != 0 {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A Table of `objects`; column definitions are left out for watch events after the first.
pub(crate) fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Arc<Value>],
    include_columns: bool,
    include_object: bool,
    list_meta: Value,
) -> Value {
    let cols = columns(rt, version);
    let now = jiff::Timestamp::now();
    let definitions: Vec<Value> = if include_columns {
        cols.iter()
            .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| cell_value(&c.cell, o, now)).collect();
            let mut object = if include_object {
                crate::builtin::present(rt, version, o)
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
            };
            crate::compact::expand(&mut object);
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": definitions, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_filters_conditions_by_type() {
        let obj = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(
            jsonpath(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(
            jsonpath(&obj, ".status.conditions[0].type"),
            vec![&json!("Synced")]
        );
        assert!(jsonpath(&obj, ".spec.missing").is_empty());
        assert_eq!(
            jsonpath(&obj, "{.status.conditions[*].type}"),
            vec![&json!("Synced"), &json!("Ready")]
        );
    }

    #[test]
    fn an_escaped_dot_names_an_annotation_key() {
        let obj = json!({"metadata": {"annotations": {"strata.dev/external-name": "db-7", "strata": {"dev/external-name": "wrong"}}}});
        assert_eq!(
            jsonpath(&obj, ".metadata.annotations.strata\\.dev/external-name"),
            vec![&json!("db-7")]
        );
        assert!(
            jsonpath(&obj, ".metadata[").is_empty(),
            "an unreadable path matches nothing"
        );
    }

    #[test]
    fn accept_header_with_table_first_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
