//! What an XRD defines, offline: its XR kind and its claim kind with a compiled schema per
//! version, admitting an object to one of them as the API server would, and binding a claim to
//! the XR it becomes.
//!
//! `strata validate` and `strata render --xrd` both admit XRs and claims here, so they refuse the
//! same objects with the same messages. The claim binding ([`composite_for_claim`]) is the one
//! the claim controller uses ([`composite_spec_from_claim`], [`composite_name`]): an offline
//! render of a claim renders the XR the control plane would create for it.
//!
//! Data enters as a typed XRD and raw objects; it leaves as [`Definition`]s, an admitted
//! (pruned, defaulted) copy of the object with [`Finding`]s, and the XR of a claim. Nothing here
//! reads files or prints.

use serde_json::{Map, Value, json};
use sha2::Digest;

use crate::crd::xrd_to_crds;
use crate::lint::{Finding, Severity};
use crate::model::{CompositeResourceDefinition, TypeReference};
use crate::wire;
use strata_schema::StructuralSchema;

/// Whether a defined kind is the XR itself or a claim of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The composite resource (XR) kind.
    Composite,
    /// A claim; the XR it binds to has this type (the XRD's referenceable version).
    Claim {
        /// `apiVersion` and `kind` of the XR.
        composite: TypeReference,
    },
}

/// One version of a defined kind.
#[derive(Clone, Debug)]
pub struct DefinedVersion {
    /// The version, such as `v1alpha1`.
    pub name: String,
    /// Whether the API serves it; objects of an unserved version are refused.
    pub served: bool,
    /// `None` when the XRD's version has no schema, or it did not compile (reported on the XRD).
    pub schema: Option<StructuralSchema>,
}

/// One kind an XRD defines (its XR or its claim), with a compiled schema per version.
#[derive(Clone, Debug)]
pub struct Definition {
    /// The API group (the XRD's `spec.group`).
    pub group: String,
    /// The kind (from `spec.names` or `spec.claimNames`).
    pub kind: String,
    /// `XRD xdatabases.example.org`, for messages.
    pub xrd: String,
    /// XR or claim.
    pub role: Role,
    /// The kind is namespaced (a claim, or a Crossplane v2 namespaced XR).
    pub namespaced: bool,
    /// The versions in the XRD's order.
    pub versions: Vec<DefinedVersion>,
}

/// A problem with the XRD itself, at a field of the XRD (empty: the XRD as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XrdProblem {
    /// The field path in the XRD (`spec.versions[0].schema`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The XR and claim definitions of an XRD, with the problems that kept a schema out. An XRD that
/// cannot be turned into CRDs at all is one problem and no definition.
pub fn definitions(xrd: &CompositeResourceDefinition) -> (Vec<Definition>, Vec<XrdProblem>) {
    let xrd_name = xrd.metadata.name.clone().unwrap_or_else(|| "?".to_owned());
    let mut problems = Vec::new();
    let generated = match xrd_to_crds(xrd) {
        Ok(generated) => generated,
        Err(e) => {
            let message = e.to_string();
            let prefix = format!("XRD `{xrd_name}`: ");
            let message = message
                .strip_prefix(&prefix)
                .map(str::to_owned)
                .unwrap_or(message);
            problems.push(XrdProblem {
                field: String::new(),
                message,
            });
            return (Vec::new(), problems);
        }
    };
    let referenceable = xrd
        .spec
        .versions
        .iter()
        .find(|v| v.referenceable)
        .or_else(|| xrd.spec.versions.first())
        .map(|v| v.name.clone())
        .unwrap_or_default();
    let composite = TypeReference {
        api_version: format!("{}/{referenceable}", xrd.spec.group),
        kind: generated.composite.spec.names.kind.clone(),
    };
    let mut out = Vec::new();
    let crds = std::iter::once((generated.composite, Role::Composite))
        .chain(generated.claim.map(|c| (c, Role::Claim { composite })));
    for (crd, role) in crds {
        let kind = crd.spec.names.kind.clone();
        let namespaced = crd.spec.scope == "Namespaced";
        let mut versions = Vec::new();
        for (i, version) in crd.spec.versions.into_iter().enumerate() {
            let at = format!("spec.versions[{i}].schema.openAPIV3Schema");
            let schema = version
                .schema
                .and_then(|s| s.open_api_v3_schema)
                .map(serde_json::to_value);
            let compiled = match schema {
                None => None,
                Some(Err(e)) => {
                    problems.push(XrdProblem {
                        field: at,
                        message: format!("the generated schema of {kind} cannot be read: {e}"),
                    });
                    None
                }
                Some(Ok(value)) => match StructuralSchema::compile(&value) {
                    Ok(schema) => Some(schema),
                    Err(e) => {
                        problems.push(XrdProblem {
                            field: at,
                            message: format!("{kind}: {e}"),
                        });
                        None
                    }
                },
            };
            versions.push(DefinedVersion {
                name: version.name,
                served: version.served,
                schema: compiled,
            });
        }
        out.push(Definition {
            group: crd.spec.group,
            kind,
            xrd: format!("XRD {xrd_name}"),
            role,
            namespaced,
            versions,
        });
    }
    (out, problems)
}

/// `(group, kind)` of an object's `apiVersion` and `kind`.
fn group_kind(object: &Value) -> (&str, &str, &str) {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    (group, version, kind)
}

/// The definition of the object's group and kind, if one of `definitions` has it.
pub fn find<'d>(definitions: &'d [Definition], object: &Value) -> Option<&'d Definition> {
    let (group, _, kind) = group_kind(object);
    definitions
        .iter()
        .find(|d| d.group == group && d.kind == kind)
}

/// `Kind/name` of a raw object.
pub fn object_name(value: &Value) -> String {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// An object as the API server would store it, and what admitting it found.
#[derive(Clone, Debug, PartialEq)]
pub struct Admission {
    /// The object pruned of fields its schema does not declare, with the schema's defaults.
    pub object: Value,
    /// Errors refuse the object; warnings (a pruned field) do not.
    pub findings: Vec<Finding>,
}

impl Admission {
    /// True when no finding is an error: the API server would store [`Admission::object`].
    pub fn is_admitted(&self) -> bool {
        !self.findings.iter().any(Finding::is_error)
    }
}

/// Admits an XR or a claim of `definition` as the API server would: the version must be defined
/// and served, the object named, then unknown fields are pruned, defaults applied and the result
/// validated, in that order.
pub fn admit(definition: &Definition, object: &Value) -> Admission {
    let (_, version, kind) = group_kind(object);
    let name = object_name(object);
    let finding = |severity, field: &str, message: String| Finding {
        severity,
        object: name.clone(),
        field: field.to_owned(),
        message,
    };
    let mut findings = Vec::new();
    let Some(defined) = definition.versions.iter().find(|v| v.name == version) else {
        let versions: Vec<&str> = definition
            .versions
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        findings.push(finding(
            Severity::Error,
            "apiVersion",
            format!(
                "{} defines no version {version:?} of {kind} (versions: {})",
                definition.xrd,
                versions.join(", ")
            ),
        ));
        return Admission {
            object: object.clone(),
            findings,
        };
    };
    if !defined.served {
        findings.push(finding(
            Severity::Error,
            "apiVersion",
            format!(
                "version {version} of {kind} is not served ({})",
                definition.xrd
            ),
        ));
    }
    let has_name = ["name", "generateName"].iter().any(|f| {
        object
            .get("metadata")
            .and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    });
    if !has_name {
        findings.push(finding(
            Severity::Error,
            "metadata.name",
            "Required value: name or generateName is required".to_owned(),
        ));
    }
    let mut value = object.clone();
    // The API server clears the namespace of a cluster-scoped object.
    if !definition.namespaced
        && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
        && meta.remove("namespace").is_some()
    {
        findings.push(finding(
            Severity::Warning,
            "metadata.namespace",
            format!("ignored: {kind} is cluster-scoped, so the API server drops it"),
        ));
    }
    if let Some(schema) = &defined.schema {
        for pruned in schema.prune(&mut value) {
            let hint = misspelt_hint(schema, &pruned);
            findings.push(finding(
                Severity::Warning,
                &pruned,
                format!(
                    "unknown field: the {kind} {version} schema does not declare it, so the API \
                     server drops it{hint}"
                ),
            ));
        }
        schema.apply_defaults(&mut value);
        for error in schema.validate(&value) {
            findings.push(finding(Severity::Error, &error.path, error.body()));
        }
    }
    Admission {
        object: value,
        findings,
    }
}

/// "; did you mean `x`?" when an undeclared field at `path` (`spec.items[0].nmae`) is close to a
/// field its parent declares; empty otherwise.
fn misspelt_hint(schema: &StructuralSchema, path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        segments.push(key);
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            segments.push("[]");
            rest = &inner[end + 1..];
        }
    }
    let Some((field, parents)) = segments.split_last() else {
        return String::new();
    };
    let mut node = schema.root();
    for segment in parents {
        let next = if *segment == "[]" {
            node.items()
        } else {
            node.property(segment)
                .or_else(|| node.additional_properties())
        };
        match next {
            Some(n) => node = n,
            None => return String::new(),
        }
    }
    crate::suggest::did_you_mean(field, node.properties().map(|(name, _)| name))
}

/// Claim spec fields that belong to the claim and never reach the XR.
pub const CLAIM_ONLY_FIELDS: [&str; 3] = [
    "resourceRef",
    "writeConnectionSecretToRef",
    "compositeDeletePolicy",
];

/// The XR spec fields a claim dictates: its whole spec minus the claim-only fields.
pub fn composite_spec_from_claim(claim: &Value) -> Map<String, Value> {
    let mut spec = match claim.get("spec") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for f in CLAIM_ONLY_FIELDS {
        spec.remove(f);
    }
    spec
}

/// The name of a claim's XR: the claim's name as `generateName` would shorten it, then five
/// characters derived from the claim's uid (from the alphabet the API server's name generator
/// uses). Derived, not random: the name is recorded on the claim before the XR exists, and a
/// pass that repeats (a restart, a retry after a conflict) arrives at the same XR instead of a
/// second one.
pub fn composite_name(claim_name: &str, claim_uid: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // The API server keeps 58 characters of a generateName base, the `-` included.
    let mut base = format!("{claim_name}-");
    if base.len() > 58 {
        let mut cut = 58;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    let digest = sha2::Sha256::digest(claim_uid.as_bytes());
    let suffix: String = digest
        .iter()
        .take(5)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{base}{suffix}")
}

/// Why a claim cannot be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim {claim}: {field}: required string")]
pub struct ClaimError {
    /// The claim as `Kind/name` (`?` for what it lacks).
    pub claim: String,
    /// The missing field (`metadata.name`).
    pub field: &'static str,
}

/// The XR the control plane creates for `claim`, as the claim controller binds it: named
/// `spec.resourceRef.name` when the claim is bound already, otherwise [`composite_name`] of the
/// claim's name and uid (an empty uid when it has none, as offline); labelled with the claim's
/// name and namespace; its spec the claim's minus the claim-only fields, plus `claimRef`.
pub fn composite_for_claim(claim: &Value, composite: &TypeReference) -> Result<Value, ClaimError> {
    let s = |p: &str| claim.pointer(p).and_then(Value::as_str);
    let required = |p: &str, field: &'static str| {
        s(p).ok_or_else(|| ClaimError {
            claim: object_name(claim),
            field,
        })
    };
    let api_version = required("/apiVersion", "apiVersion")?;
    let kind = required("/kind", "kind")?;
    let name = required("/metadata/name", "metadata.name")?;
    let namespace = required("/metadata/namespace", "metadata.namespace")?;
    let xr_name = match s("/spec/resourceRef/name").filter(|n| !n.is_empty()) {
        Some(bound) => bound.to_owned(),
        None => composite_name(name, s("/metadata/uid").unwrap_or_default()),
    };
    let mut spec = composite_spec_from_claim(claim);
    spec.insert(
        "claimRef".into(),
        json!({"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace}),
    );
    Ok(json!({
        "apiVersion": composite.api_version,
        "kind": composite.kind,
        "metadata": {
            "name": xr_name,
            "labels": {
                wire::LABEL_CLAIM_NAME: name,
                wire::LABEL_CLAIM_NAMESPACE: namespace,
            },
        },
        "spec": Value::Object(spec),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::load;

    const XRD: &str = r#"
apiVersion: apiextensions.crossplane.io/v1
kind: CompositeResourceDefinition
metadata: {name: xdatabases.example.org}
spec:
  group: example.org
  names: {kind: XDatabase, plural: xdatabases}
  claimNames: {kind: Database, plural: databases}
  versions:
  - name: v1alpha1
    served: true
    referenceable: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, large]}
              engine: {type: string, default: postgres}
"#;

    fn defined() -> Vec<Definition> {
        let docs = load::parse_stream(XRD, "xrd.yaml").unwrap();
        let xrd = load::xrd(&docs[0]).unwrap();
        let (definitions, problems) = definitions(&xrd);
        assert!(problems.is_empty(), "{problems:?}");
        definitions
    }

    #[test]
    fn an_xrd_defines_its_composite_and_its_claim_bound_to_the_referenceable_version() {
        let d = defined();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].kind.as_str(), &d[0].role),
            ("XDatabase", &Role::Composite)
        );
        assert_eq!(
            d[1].role,
            Role::Claim {
                composite: TypeReference {
                    api_version: "example.org/v1alpha1".into(),
                    kind: "XDatabase".into()
                }
            }
        );
    }

    #[test]
    fn admission_prunes_defaults_and_refuses_a_bad_value_naming_the_field() {
        let d = defined();
        let claim = json!({"apiVersion": "example.org/v1alpha1", "kind": "Database",
            "metadata": {"name": "db", "namespace": "team"},
            "spec": {"size": "huge", "colour": "red"}});
        let admitted = admit(find(&d, &claim).unwrap(), &claim);
        assert!(!admitted.is_admitted());
        let lines: Vec<String> = admitted.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "Database/db: spec.colour: unknown field: the Database v1alpha1 schema does not \
                 declare it, so the API server drops it",
                "Database/db: spec.size: Unsupported value: \"huge\": supported values: \
                 \"small\", \"large\"",
            ]
        );
        assert_eq!(admitted.object["spec"]["engine"], "postgres");
        assert!(admitted.object["spec"].get("colour").is_none());
    }

    #[test]
    fn a_misspelt_field_the_schema_drops_suggests_the_declared_one() {
        let d = defined();
        let xr = json!({"apiVersion": "example.org/v1alpha1", "kind": "XDatabase",
            "metadata": {"name": "db"}, "spec": {"size": "small", "engnie": "mysql"}});
        let admitted = admit(find(&d, &xr).unwrap(), &xr);
        assert_eq!(
            admitted.findings[0].to_string(),
            "XDatabase/db: spec.engnie: unknown field: the XDatabase v1alpha1 schema does not \
             declare it, so the API server drops it; did you mean `engine`?"
        );
    }

    #[test]
    fn a_claim_becomes_the_xr_the_claim_controller_would_create() {
        let claim = json!({"apiVersion": "example.org/v1alpha1", "kind": "Database",
            "metadata": {"name": "db", "namespace": "team"},
            "spec": {"size": "small", "writeConnectionSecretToRef": {"name": "s"},
                     "compositionRef": {"name": "c"}}});
        let xr_type = TypeReference {
            api_version: "example.org/v1alpha1".into(),
            kind: "XDatabase".into(),
        };
        let xr = composite_for_claim(&claim, &xr_type).unwrap();
        assert_eq!(xr["metadata"]["name"], composite_name("db", ""));
        assert_eq!(
            xr["metadata"]["labels"][wire::LABEL_CLAIM_NAMESPACE],
            "team"
        );
        assert_eq!(
            xr["spec"],
            json!({"size": "small", "compositionRef": {"name": "c"},
                   "claimRef": {"apiVersion": "example.org/v1alpha1", "kind": "Database",
                                "name": "db", "namespace": "team"}})
        );
        let mut bound = claim.clone();
        bound["spec"]["resourceRef"] = json!({"name": "db-abcde"});
        assert_eq!(
            composite_for_claim(&bound, &xr_type).unwrap()["metadata"]["name"],
            "db-abcde",
            "a bound claim keeps its XR"
        );
        let mut loose = claim;
        loose["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        assert_eq!(
            composite_for_claim(&loose, &xr_type)
                .unwrap_err()
                .to_string(),
            "claim Database/db: metadata.namespace: required string"
        );
    }

    #[test]
    fn the_composite_name_is_stable_per_claim_and_fits_a_name() {
        let a = composite_name("db", "uid-1");
        assert!(a.starts_with("db-") && a.len() == 8, "{a}");
        assert_eq!(a, composite_name("db", "uid-1"), "same claim, same name");
        assert_ne!(
            a,
            composite_name("db", "uid-2"),
            "a recreated claim gets another"
        );
        let long = composite_name(&"x".repeat(300), "uid-1");
        assert_eq!(long.len(), 63, "58 characters of base and 5 of suffix");
    }
}
