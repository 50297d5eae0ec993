//! Property tests ("fuzzing" with proptest, since cargo-fuzz needs a nightly toolchain) of the
//! composition core: arbitrary JSON, arbitrary but structurally plausible Compositions, arbitrary
//! field paths and transforms. Every property states that the code under test returns `Ok` or a
//! typed error and never panics, plus the invariants a successful result must keep.
//!
//! Failures are persisted in `proptest-regressions/fuzz.txt` and replayed first on
//! every run: commit that file.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use strata_core::compile::CompiledComposition;
use strata_core::fieldpath::{FieldPath, Segment};
use strata_core::model::CompositionSpec;
use strata_core::patch::merge;
use strata_core::render::{Observed, ObservedResources, RenderInput, render};
use strata_core::transform::{Transform, apply_all, compile_all};

const XR_API_VERSION: &str = "example.org/v1";
const XR_KIND: &str = "XThing";
const RESOURCE_NAMES: [&str; 4] = ["r0", "r1", "r2", "r3"];

/// `cases` per property, unless `PROPTEST_CASES` asks for a longer (or shorter) run.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        default.cases
    } else {
        cases
    };
    ProptestConfig {
        cases,
        max_shrink_iters: 2_000,
        // Relative to the repository root, where `cargo test` runs the integration binary.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/fuzz.txt",
        ))),
        ..default
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Keys from a small alphabet, so that generated paths often hit generated data.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("spec".to_owned()),
        Just("status".to_owned()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("x.y".to_owned()),
        Just("0".to_owned()),
        "[a-c]{1,2}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-3i64..1025).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        (-4.0f64..4.0).prop_map(Value::from),
        prop_oneof![
            Just("".to_owned()),
            Just("eu-west-1".to_owned()),
            Just("42".to_owned()),
            Just("3.5".to_owned()),
            Just("true".to_owned()),
            Just("1500m".to_owned()),
            Just("2Gi".to_owned()),
            Just("{\"k\": [1, 2]}".to_owned()),
            Just("[1, \"x\"]".to_owned()),
            Just("aGVsbG8=".to_owned()),
            "\\PC{0,8}",
        ]
        .prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// Field paths from a small alphabet of segments, sometimes malformed.
fn field_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        4 => key().prop_map(|k| if k.contains('.') { format!("[{k}]") } else { k }),
        1 => Just("[0]".to_owned()),
        1 => Just("[1]".to_owned()),
        1 => Just("[*]".to_owned()),
        1 => Just("['x.y']".to_owned()),
        1 => Just("[2000]".to_owned()),
        1 => Just("[-1]".to_owned()),
    ];
    prop_oneof![
        19 => prop::collection::vec(segment, 1..5).prop_map(|segs| {
            let mut out = String::new();
            for s in segs {
                if !out.is_empty() && !s.starts_with('[') {
                    out.push('.');
                }
                out.push_str(&s);
            }
            out
        }),
        1 => "[a-c.\\[\\]*0-9']{0,8}",
    ]
}

fn small_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("".to_owned()),
        Just("-".to_owned()),
        "[a-c]{1,3}"
    ]
}

fn regexp() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("^a".to_owned()),
        Just("(a)(b)?".to_owned()),
        Just("[0-9]+".to_owned()),
        Just("(".to_owned()),
        Just(".*".to_owned()),
    ]
}

fn go_format() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("%s".to_owned()),
        Just("%d-%s".to_owned()),
        Just("%v".to_owned()),
        Just("%05.2f".to_owned()),
        Just("%q %t %x".to_owned()),
        Just("%".to_owned()),
        Just("%!".to_owned()),
        Just("100%%".to_owned()),
        "[%a-z0-9.+#-]{0,8}",
    ]
}

fn any_i64() -> impl Strategy<Value = i64> {
    prop_oneof![-5i64..5, Just(i64::MAX), Just(i64::MIN)]
}

/// A transform in wire form; some are deliberately invalid.
fn transform() -> impl Strategy<Value = Value> {
    let map = prop::collection::btree_map(small_string(), json_value(), 0..3)
        .prop_map(|m| json!({"type": "map", "map": m}));
    let pattern =
        (any::<bool>(), small_string(), regexp(), scalar()).prop_map(|(lit, l, r, result)| {
            if lit {
                json!({"type": "literal", "literal": l, "result": result})
            } else {
                json!({"type": "regexp", "regexp": r, "result": result})
            }
        });
    let match_ = (
        prop::collection::vec(pattern, 0..3),
        prop::option::of(scalar()),
        prop::option::of(prop_oneof![Just("Value"), Just("Input")]),
    )
        .prop_map(|(patterns, fallback_value, fallback_to)| {
            let mut m = json!({"patterns": patterns});
            if let Some(v) = fallback_value {
                m["fallbackValue"] = v;
            }
            if let Some(t) = fallback_to {
                m["fallbackTo"] = json!(t);
            }
            json!({"type": "match", "match": m})
        });
    let math = (
        prop_oneof![Just("Multiply"), Just("ClampMin"), Just("ClampMax")],
        any_i64(),
    )
        .prop_map(|(kind, n)| {
            let field = match kind {
                "Multiply" => "multiply",
                "ClampMin" => "clampMin",
                _ => "clampMax",
            };
            json!({"type": "math", "math": {"type": kind, field: n}})
        });
    let string = prop_oneof![
        go_format().prop_map(|f| json!({"type": "Format", "fmt": f})),
        prop_oneof![
            Just("ToUpper"),
            Just("ToLower"),
            Just("ToBase64"),
            Just("FromBase64"),
            Just("ToJson"),
            Just("ToSha1"),
            Just("ToSha256"),
            Just("ToSha512"),
            Just("ToAdler32"),
        ]
        .prop_map(|c| json!({"type": "Convert", "convert": c})),
        (
            prop_oneof![Just("TrimPrefix"), Just("TrimSuffix")],
            small_string()
        )
            .prop_map(|(t, trim)| json!({"type": t, "trim": trim})),
        (regexp(), prop::option::of(-1i64..4)).prop_map(|(m, g)| match g {
            Some(g) => json!({"type": "Regexp", "regexp": {"match": m, "group": g}}),
            None => json!({"type": "Regexp", "regexp": {"match": m}}),
        }),
        small_string().prop_map(|s| json!({"type": "Join", "join": {"separator": s}})),
        (small_string(), small_string())
            .prop_map(|(s, r)| json!({"type": "Replace", "replace": {"search": s, "replace": r}})),
    ]
    .prop_map(|s| json!({"type": "string", "string": s}));
    let convert = (
        prop_oneof![
            Just("string"),
            Just("int"),
            Just("int64"),
            Just("bool"),
            Just("float64"),
            Just("object"),
            Just("array"),
        ],
        prop::option::of(prop_oneof![Just("none"), Just("quantity"), Just("json")]),
    )
        .prop_map(|(to, format)| match format {
            Some(f) => json!({"type": "convert", "convert": {"toType": to, "format": f}}),
            None => json!({"type": "convert", "convert": {"toType": to}}),
        });
    prop_oneof![map, match_, math, string, convert]
}

/// Every patch type.
const ALL_PATCHES: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
/// What a PatchSet may hold (no nested PatchSet).
const SET_PATCHES: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7, 9];
/// What `environment.patches` may hold (Crossplane's and function-patch-and-transform's names).
const ENVIRONMENT_PATCHES: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7];

const PATCH_TYPES: [&str; 10] = [
    "FromCompositeFieldPath",
    "ToCompositeFieldPath",
    "CombineFromComposite",
    "CombineToComposite",
    "FromEnvironmentFieldPath",
    "ToEnvironmentFieldPath",
    "CombineFromEnvironment",
    "CombineToEnvironment",
    "PatchSet",
    "FromResourceFieldPath",
];

fn policy() -> impl Strategy<Value = Option<Value>> {
    prop::option::of(
        (
            prop::option::of(prop_oneof![Just("Optional"), Just("Required")]),
            prop::option::of(prop_oneof![
                Just("Replace"),
                Just("MergeObjects"),
                Just("MergeObjectsAppendArrays"),
                Just("ForceMergeObjects"),
                Just("ForceMergeObjectsAppendArrays"),
            ]),
            prop::option::of((
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
            )),
        )
            .prop_map(|(from, to, merge)| {
                let mut p = Map::new();
                if let Some(f) = from {
                    p.insert("fromFieldPath".into(), json!(f));
                }
                if let Some(t) = to {
                    p.insert("toFieldPath".into(), json!(t));
                }
                if let Some((keep, append)) = merge {
                    let mut m = Map::new();
                    if let Some(k) = keep {
                        m.insert("keepMapValues".into(), json!(k));
                    }
                    if let Some(a) = append {
                        m.insert("appendSlice".into(), json!(a));
                    }
                    p.insert("mergeOptions".into(), Value::Object(m));
                }
                Value::Object(p)
            }),
    )
}

/// Patches of the given types (indexes into [`PATCH_TYPES`]).
fn patch(types: &'static [usize]) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(types),
        field_path(),
        prop::option::of(field_path()),
        prop::collection::vec(field_path(), 1..3),
        go_format(),
        prop_oneof![Just("s0"), Just("s1"), Just("missing")],
        prop_oneof![Just("r0"), Just("r1"), Just("r2"), Just("r3"), Just("nope")],
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(transform(), 1..3)],
        policy(),
    )
        .prop_map(|(kind, from, to, vars, fmt, set, resource, transforms, policy)| {
            let kind = PATCH_TYPES[kind];
            let mut p = Map::new();
            p.insert("type".into(), json!(kind));
            match kind {
                "PatchSet" => {
                    p.insert("patchSetName".into(), json!(set));
                }
                k if k.starts_with("Combine") => {
                    let variables: Vec<Value> = vars.iter().map(|v| json!({"fromFieldPath": v})).collect();
                    p.insert("combine".into(), json!({"variables": variables, "strategy": "string", "string": {"fmt": fmt}}));
                }
                _ => {
                    p.insert("fromFieldPath".into(), json!(from));
                }
            }
            if kind == "FromResourceFieldPath" {
                p.insert("fromResource".into(), json!(resource));
            }
            match to {
                Some(to) => {
                    p.insert("toFieldPath".into(), json!(to));
                }
                // A Combine patch needs a toFieldPath; usually give it one.
                None if kind.starts_with("Combine") && from.len() % 4 != 0 => {
                    p.insert("toFieldPath".into(), json!(from));
                }
                None => {}
            }
            if !transforms.is_empty() {
                p.insert("transforms".into(), Value::Array(transforms));
            }
            if let Some(policy) = policy {
                p.insert("policy".into(), policy);
            }
            Value::Object(p)
        })
}

fn readiness_check() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            Just("None"),
            Just("NonEmpty"),
            Just("MatchString"),
            Just("MatchInteger"),
            Just("MatchTrue"),
            Just("MatchFalse"),
            Just("MatchCondition"),
        ],
        field_path(),
    )
        .prop_map(|(kind, path)| match kind {
            "MatchString" => json!({"type": kind, "fieldPath": path, "matchString": "a"}),
            "MatchInteger" => json!({"type": kind, "fieldPath": path, "matchInteger": 1}),
            "MatchCondition" => {
                json!({"type": kind, "matchCondition": {"type": "Ready", "status": "True"}})
            }
            "None" => json!({"type": kind}),
            _ => json!({"type": kind, "fieldPath": path}),
        })
}

fn connection_detail() -> impl Strategy<Value = Value> {
    (0..3usize, field_path(), small_string()).prop_map(|(kind, path, s)| match kind {
        0 => json!({"name": format!("k{s}"), "fromConnectionSecretKey": s}),
        1 => json!({"name": format!("f{s}"), "type": "FromFieldPath", "fromFieldPath": path}),
        _ => json!({"name": "v", "value": s}),
    })
}

fn template(name: &'static str) -> impl Strategy<Value = Value> {
    (
        json_object(),
        prop::bool::weighted(0.95),
        prop::collection::vec(patch(ALL_PATCHES), 0..5),
        prop::option::of(prop::collection::vec(readiness_check(), 0..3)),
        prop::collection::vec(connection_detail(), 0..3),
        prop::collection::vec(prop_oneof![Just("r0"), Just("r1"), Just("r2"), Just("r3")], 0..2),
    )
        .prop_map(move |(mut base, typed, patches, checks, details, depends_on)| {
            if typed {
                base.insert("apiVersion".into(), json!("example.org/v1"));
                base.insert("kind".into(), json!("Thing"));
            }
            let mut t = json!({"name": name, "base": base, "patches": patches, "connectionDetails": details});
            if let Some(c) = checks {
                t["readinessChecks"] = json!(c);
            }
            let deps: Vec<&str> = depends_on.into_iter().filter(|d| *d != name).collect();
            if !deps.is_empty() {
                t["dependsOn"] = json!(deps);
            }
            t
        })
}

/// A Composition spec as JSON: 0–4 resources, 0–2 PatchSets, optional environment patches.
fn composition() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(prop::collection::vec(patch(SET_PATCHES), 0..3), 0..3),
        prop::option::of(prop::collection::vec(patch(ENVIRONMENT_PATCHES), 0..3)),
        prop::option::of(json_object()),
        (0..=RESOURCE_NAMES.len()).prop_flat_map(|n| {
            RESOURCE_NAMES[..n]
                .iter()
                .map(|name| template(name))
                .collect::<Vec<_>>()
        }),
    )
        .prop_map(|(sets, env_patches, default_data, resources)| {
            let sets: Vec<Value> = sets
                .into_iter()
                .enumerate()
                .map(|(i, patches)| json!({"name": format!("s{i}"), "patches": patches}))
                .collect();
            let mut spec = json!({
                "compositeTypeRef": {"apiVersion": XR_API_VERSION, "kind": XR_KIND},
                "patchSets": sets,
                "resources": resources,
            });
            if env_patches.is_some() || default_data.is_some() {
                let mut env = Map::new();
                if let Some(p) = env_patches {
                    env.insert("patches".into(), Value::Array(p));
                }
                if let Some(d) = default_data {
                    env.insert("defaultData".into(), Value::Object(d));
                }
                spec["environment"] = Value::Object(env);
            }
            spec
        })
}

fn composite() -> impl Strategy<Value = Value> {
    (
        json_object(),
        json_object(),
        prop::bool::weighted(0.95),
        prop::option::weighted(0.2, Just("ns1")),
    )
        .prop_map(|(spec, status, matching, namespace)| {
            let mut xr = json!({
                "apiVersion": if matching { XR_API_VERSION } else { "example.org/v2" },
                "kind": XR_KIND,
                "metadata": {"name": "xr", "uid": "u-1"},
                "spec": spec,
                "status": status,
            });
            if let Some(ns) = namespace {
                xr["metadata"]["namespace"] = json!(ns);
            }
            xr
        })
}

fn observed() -> impl Strategy<Value = ObservedResources> {
    prop::collection::btree_map(
        prop_oneof![Just("r0"), Just("r1"), Just("r2"), Just("r3")],
        (
            json_object(),
            any::<bool>(),
            prop::collection::btree_map(small_string(), small_string(), 0..2),
        ),
        0..4,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(name, (mut object, ready, secret))| {
                object.insert("apiVersion".into(), json!("example.org/v1"));
                object.insert("kind".into(), json!("Thing"));
                object.insert(
                    "metadata".into(),
                    json!({"name": format!("observed-{name}")}),
                );
                let status = if ready { "True" } else { "False" };
                object.insert(
                    "status".into(),
                    json!({"conditions": [{"type": "Ready", "status": status}], "id": "x"}),
                );
                let connection_details = secret
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect::<BTreeMap<_, _>>();
                (
                    name.to_owned(),
                    Observed {
                        resource: Value::Object(object),
                        connection_details,
                    },
                )
            })
            .collect()
    })
}

/// The same Composition rendering from `stamped_base` with lookups only.
fn without_skeletons(compiled: &CompiledComposition) -> CompiledComposition {
    let mut compiled = compiled.clone();
    for r in &mut compiled.resources {
        r.skeleton = None;
        for p in &mut r.patches {
            p.slot = None;
            p.to_present = false;
            p.to_position = None;
        }
    }
    compiled
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1000))]

    /// Compile and render never panic; a successful render accounts for every template, names
    /// every released resource, carries the XR's Ready condition and is deterministic.
    #[test]
    fn compile_and_render_return_ok_or_a_typed_error(
        spec in composition(),
        xr in composite(),
        observed in observed(),
        environment in prop_oneof![
            8 => prop::option::of(json_object().prop_map(Value::Object)),
            1 => json_value().prop_map(Some),
        ],
    ) {
        let Ok(spec) = serde_json::from_value::<CompositionSpec>(spec) else { return Ok(()) };
        let Ok(compiled) = CompiledComposition::compile(&spec) else { return Ok(()) };
        let input = RenderInput { composite: &xr, observed: &observed, environment: environment.as_ref() };
        let first = render(&compiled, input);
        let again = render(&compiled, input);
        prop_assert_eq!(&first, &again, "render is a pure function");
        let plain = render(&without_skeletons(&compiled), input);
        prop_assert_eq!(&first, &plain, "a render from skeletons equals one from the stamped bases");
        let Ok(out) = first else { return Ok(()) };
        prop_assert_eq!(out.resources.len() + out.withheld.len(), spec.resources.len());
        for r in &out.resources {
            prop_assert!(r.resource.pointer("/metadata/name").is_some_and(Value::is_string), "{} has a name", r.name);
            let annotation = r.resource.pointer("/metadata/annotations/strata.dev~1composition-resource-name");
            prop_assert_eq!(annotation, Some(&json!(r.name)));
            let owner = r.resource.pointer("/metadata/ownerReferences").and_then(Value::as_array)
                .map(|refs| refs.iter().filter(|o| o["controller"] == json!(true)).count());
            prop_assert_eq!(owner, Some(1), "{} has exactly one controller reference", &r.name);
            prop_assert!(!has_integral_float(&r.resource), "{} keeps an integral float", &r.name);
        }
        for w in &out.withheld {
            prop_assert!(!observed.contains_key(&w.name), "an observed resource ({}) is never withheld", &w.name);
        }
        // Released resources come after the released resources they depend on.
        let position: BTreeMap<usize, usize> = out.resources.iter().enumerate().map(|(p, r)| (r.index, p)).collect();
        for (p, r) in out.resources.iter().enumerate() {
            for (dep, _) in compiled.graph.dependencies(r.index) {
                if let Some(dp) = position.get(&dep) {
                    prop_assert!(*dp < p, "{} is printed before its dependency", &r.name);
                }
            }
        }
        let composite = out.composite(&xr);
        prop_assert_eq!(
            serde_json::to_string(&composite).ok(),
            serde_json::to_string(&composite.to_value()).ok(),
            "the composite view serializes as the owned XR"
        );
        let ready = out.merged_status(&xr).pointer("/conditions").and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready")).cloned();
        prop_assert!(ready.is_some(), "the XR has a Ready condition");
        let mut unready = out.unready.clone();
        unready.sort();
        prop_assert_eq!(&unready, &out.unready, "unready names are sorted");
    }

    /// The parser accepts or rejects any string without panicking; what it accepts prints as a
    /// path that parses back to the same segments.
    #[test]
    fn field_paths_parse_or_fail_cleanly(s in "\\PC{0,24}") {
        if let Ok(p) = FieldPath::parse(&s) {
            let printed = p.to_string();
            if p.segments().iter().all(|seg| match seg {
                Segment::Field(f) => !f.contains(['[', ']']) && !f.is_empty(),
                Segment::Index(_) => true,
            }) {
                let again = FieldPath::parse(&printed);
                prop_assert!(again.is_ok(), "{printed:?} (from {s:?}) must parse");
                if let Ok(again) = again {
                    prop_assert_eq!(again.segments(), p.segments());
                }
            }
        }
    }

    /// Reads and writes on arbitrary JSON never panic; a successful plain write reads back.
    #[test]
    fn field_path_reads_and_writes_never_panic(path in field_path(), mut root in json_value(), value in json_value()) {
        let Ok(p) = FieldPath::parse(&path) else { return Ok(()) };
        let _ = p.get(&root);
        let _ = p.expand_wildcards(&root);
        if p.set(&mut root, value.clone()).is_ok() && !p.has_wildcard() {
            prop_assert_eq!(p.get(&root).ok(), Some(&value));
        }
    }

    /// Any transform compiles or fails with a typed error, and applies to any input without
    /// panicking; integral floats never survive in the output.
    #[test]
    fn transforms_never_panic(ts in prop::collection::vec(transform(), 1..4), input in json_value()) {
        let Ok(ts) = serde_json::from_value::<Vec<Transform>>(Value::Array(ts)) else { return Ok(()) };
        let Ok(compiled) = compile_all(&ts) else { return Ok(()) };
        if let Ok(out) = apply_all(&compiled, &input) {
            prop_assert!(!has_integral_float(&out), "{out} keeps an integral float");
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// The merge behind every `toFieldPath` policy never panics, and keeps its promises on
    /// objects: a forced merge leaves every top-level source key with the source's scalar, a
    /// keeping merge leaves every non-empty top-level destination scalar in place.
    #[test]
    fn merges_keep_their_winner(dst in json_object(), src in json_object(), keep in any::<bool>(), append in any::<bool>()) {
        let Ok(merged) = merge(Some(Value::Object(dst.clone())), Value::Object(src.clone()), keep, append) else {
            return Ok(());
        };
        let Some(merged) = merged.as_object() else {
            return Err(TestCaseError::fail("merging two objects yields an object"));
        };
        for (k, v) in &src {
            let scalar = !v.is_object() && !v.is_array();
            let dst_empty = dst.get(k).is_none_or(is_go_empty);
            // mergo never copies a nil source value unless it overwrites.
            if scalar && (!keep || (dst_empty && !v.is_null())) {
                prop_assert_eq!(merged.get(k), Some(v), "source wins at {}", k);
            }
        }
        if keep {
            for (k, v) in &dst {
                if !v.is_object() && !v.is_array() && !is_go_empty(v) {
                    prop_assert_eq!(merged.get(k), Some(v), "destination kept at {}", k);
                }
            }
        }
    }
}

/// Go's zero values, which mergo lets a source value replace.
fn is_go_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn has_integral_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_f64()
                && n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
        }
        Value::Array(items) => items.iter().any(has_integral_float),
        Value::Object(map) => map.values().any(has_integral_float),
        _ => false,
    }
}
