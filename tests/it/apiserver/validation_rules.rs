//! CRD validation rules (`x-kubernetes-validations`) and deprecated CRD versions, driven by the
//! real kubectl: objects that pass and fail, a transition rule on update, a `messageExpression`,
//! a CRD whose rule does not compile, and the `Warning` of a deprecated version.

use super::fixture::ControlPlane;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.replicas <= self.maxReplicas
              messageExpression: "'replicas (' + string(self.replicas) + ') must not exceed maxReplicas (' + string(self.maxReplicas) + ')'"
              fieldPath: .replicas
            - rule: "!has(self.owner) || self.owner.startsWith('team-')"
              message: owner must name a team
              reason: FieldValueForbidden
            properties:
              replicas: {type: integer}
              maxReplicas: {type: integer, default: 3}
              owner: {type: string, maxLength: 32}
              tier:
                type: string
                maxLength: 16
                x-kubernetes-validations:
                - {rule: self == oldSelf, message: tier is immutable}
              name:
                type: string
                maxLength: 32
                x-kubernetes-validations:
                - rule: self.startsWith('g-')
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

fn write(cp: &ControlPlane, name: &str, text: &str) -> String {
    let path = cp.dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn gadget(spec: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {{name: g1, namespace: default}}\nspec: {spec}\n"
    )
}

/// kubectl's stderr for a command that must fail.
fn refused(cp: &ControlPlane, args: &[&str]) -> String {
    let out = cp.kubectl(args);
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kubectl_sees_validation_rules_enforced_with_kube_apiserver_errors() {
    let cp = ControlPlane::start("cel-rules");
    let crd = write(&cp, "crd.yaml", CRD);
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=10s",
    ]);

    // Passing rules: created, with the default maxReplicas the rule saw.
    let good = write(
        &cp,
        "good.yaml",
        &gadget("{replicas: 2, tier: gold, name: g-one, owner: team-a}"),
    );
    let out = cp.kubectl_ok(&["apply", "-f", &good]);
    assert!(out.contains("gadget.example.com/g1 created"), "{out}");

    // A failing rule with a messageExpression and a fieldPath; one with a reason.
    let bad = write(
        &cp,
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g2, namespace: default}\nspec: {replicas: 5, name: g-two, owner: ops}\n",
    );
    let err = refused(&cp, &["apply", "-f", &bad]);
    assert!(err.contains("The Gadget \"g2\" is invalid: "), "{err}");
    assert!(
        err.contains(
            "* spec.replicas: Invalid value: \"object\": replicas (5) must not exceed maxReplicas (3)"
        ),
        "{err}"
    );
    assert!(
        err.contains("* spec: Forbidden: owner must name a team"),
        "{err}"
    );
    // A rule on a scalar without a message.
    let unnamed = write(
        &cp,
        "unnamed.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g3, namespace: default}\nspec: {replicas: 1, name: other}\n",
    );
    let err = refused(&cp, &["apply", "-f", &unnamed]);
    assert!(
        err.contains(
            "The Gadget \"g3\" is invalid: spec.name: Invalid value: \"string\": failed rule: self.startsWith('g-')"
        ),
        "{err}"
    );
    assert!(
        !cp.kubectl(&["get", "gadget", "g2", "-n", "default"])
            .status
            .success(),
        "a refused object is not stored"
    );

    // The transition rule: unchanged tier passes, a changed one is refused.
    let same = write(
        &cp,
        "same.yaml",
        &gadget("{replicas: 3, tier: gold, name: g-one, owner: team-a}"),
    );
    let out = cp.kubectl_ok(&["apply", "-f", &same]);
    assert!(out.contains("gadget.example.com/g1 configured"), "{out}");
    let changed = write(
        &cp,
        "changed.yaml",
        &gadget("{replicas: 3, tier: silver, name: g-one, owner: team-a}"),
    );
    let err = refused(&cp, &["apply", "-f", &changed]);
    assert!(
        err.contains(
            "The Gadget \"g1\" is invalid: spec.tier: Invalid value: \"string\": tier is immutable"
        ),
        "{err}"
    );
    let patch = refused(
        &cp,
        &[
            "patch",
            "gadget",
            "g1",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"spec":{"tier":"bronze"}}"#,
        ],
    );
    assert!(
        patch.contains("spec.tier: Invalid value: \"string\": tier is immutable"),
        "{patch}"
    );
    let stored = cp.kubectl_ok(&[
        "get",
        "gadget",
        "g1",
        "-n",
        "default",
        "-o",
        "jsonpath={.spec.tier}",
    ]);
    assert_eq!(stored, "gold");

    // A rule added later: the existing object may still change where it does not break it
    // (ratcheting, with a warning), not where it does.
    let stricter = CRD.replace(
        "              replicas: {type: integer}",
        "              replicas:\n                type: integer\n                x-kubernetes-validations:\n                - {rule: self <= 2, message: at most 2}",
    );
    let stricter = write(&cp, "stricter.yaml", &stricter);
    cp.kubectl_ok(&["apply", "-f", &stricter]);
    let labelled = cp.kubectl(&["label", "gadget", "g1", "-n", "default", "tier=gold"]);
    assert!(labelled.status.success(), "{labelled:?}");
    assert!(
        String::from_utf8_lossy(&labelled.stderr)
            .contains("Warning: spec.replicas: Invalid value: \"integer\": at most 2"),
        "{labelled:?}"
    );
    let raised = refused(
        &cp,
        &[
            "patch",
            "gadget",
            "g1",
            "-n",
            "default",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":4,"maxReplicas":5}}"#,
        ],
    );
    assert!(
        raised.contains("spec.replicas: Invalid value: \"integer\": at most 2"),
        "{raised}"
    );
}

#[test]
fn kubectl_is_warned_on_a_deprecated_crd_version() {
    let cp = ControlPlane::start("cel-deprecated");
    let crd = write(&cp, "crd.yaml", CRD);
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.example.com",
        "--timeout=10s",
    ]);
    let old = write(
        &cp,
        "old.yaml",
        "apiVersion: example.com/v1beta1\nkind: Gadget\nmetadata: {name: legacy, namespace: default}\nspec: {anything: 1}\n",
    );
    let out = cp.kubectl(&["apply", "-f", &old]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Warning: example.com/v1beta1 Gadget is deprecated; use example.com/v1 Gadget"
        ),
        "{stderr}"
    );
    let listed = cp.kubectl(&["get", "gadgets.v1beta1.example.com", "-n", "default"]);
    assert!(
        String::from_utf8_lossy(&listed.stderr)
            .contains("Warning: example.com/v1beta1 Gadget is deprecated"),
        "{listed:?}"
    );
    let current = cp.kubectl(&["get", "gadgets.v1.example.com", "-n", "default"]);
    assert!(
        !String::from_utf8_lossy(&current.stderr).contains("Warning"),
        "{current:?}"
    );
}

#[test]
fn kubectl_is_refused_a_crd_whose_rule_does_not_compile_naming_the_rule() {
    let cp = ControlPlane::start("cel-broken");
    let broken = CRD
        .replace("gadgets", "brokens")
        .replace("Gadget", "Broken")
        .replace("gadget", "broken")
        .replace("self.startsWith('g-')", "self.startsWith(");
    let crd = write(&cp, "broken.yaml", &broken);
    let err = refused(&cp, &["apply", "-f", &crd]);
    assert!(
        err.contains("The CustomResourceDefinition \"brokens.example.com\" is invalid: "),
        "{err}"
    );
    assert!(
        err.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[name].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.startsWith(\""
        ),
        "{err}"
    );
    assert!(
        err.contains("compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
    assert!(
        !cp.kubectl(&["get", "crd", "brokens.example.com"])
            .status
            .success(),
        "the CRD is not stored"
    );

    // A rule over the cost limit is refused too, naming the rule.
    let costly = CRD.replace(
        "self.replicas <= self.maxReplicas",
        "self.replicas <= self.maxReplicas && [1].all(x, true)",
    );
    let costly = costly.replace(
        "              replicas: {type: integer}",
        "              replicas: {type: integer}\n              xs: {type: array, items: {type: string}}",
    );
    let costly = costly.replace(
        "self.replicas <= self.maxReplicas && [1].all(x, true)",
        "self.xs.all(a, self.xs.all(b, a != b))",
    );
    let crd = write(&cp, "costly.yaml", &costly);
    let err = refused(&cp, &["apply", "-f", &crd]);
    assert!(
        err.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x"
        ),
        "{err}"
    );
}

/// Lists of up to 1000 integers checked pairwise on `spec` (an estimate of about 5M, within the
/// 10M a rule may declare), and up to 16 groups of two 200-item lists, each group under four
/// rules of about 200k each.
const METERED: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: meters.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: meters, singular: meter, kind: Meter}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "!has(self.xs) || self.xs.all(x, self.ys.all(y, x != y))"
              message: xs and ys overlap
            properties:
              xs: {type: array, maxItems: 1000, items: {type: integer}}
              ys: {type: array, maxItems: 1000, items: {type: integer}}
              groups:
                type: array
                maxItems: 16
                items:
                  type: object
                  x-kubernetes-validations:
                  - rule: self.xs.all(x, self.ys.all(y, x != y))
                  - rule: self.xs.all(x, self.ys.all(y, x < y))
                  - rule: self.xs.all(x, self.ys.all(y, x + 1 <= y))
                  - rule: self.ys.all(y, self.xs.all(x, y > x))
                  properties:
                    xs: {type: array, maxItems: 200, items: {type: integer}}
                    ys: {type: array, maxItems: 200, items: {type: integer}}
"#;

fn meter(name: &str, spec: serde_json::Value) -> String {
    serde_json::json!({"apiVersion": "example.com/v1", "kind": "Meter",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    .to_string()
}

fn disjoint(n: i64) -> serde_json::Value {
    serde_json::json!({"xs": (0..n).collect::<Vec<_>>(), "ys": (n..2 * n).collect::<Vec<_>>()})
}

#[test]
fn kubectl_sees_the_runtime_cost_limits_of_validation_rules() {
    let cp = ControlPlane::start("cel-cost");
    let crd = write(&cp, "crd.yaml", METERED);
    cp.kubectl_ok(&["apply", "-f", &crd]);
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/meters.example.com",
        "--timeout=10s",
    ]);

    // Within the limits: 100 × 100 pairs on spec, 8 full groups.
    let groups = |n: usize| serde_json::json!({"groups": vec![disjoint(200); n]});
    let small = write(&cp, "small.json", &meter("small", disjoint(100)));
    cp.kubectl_ok(&["create", "-f", &small]);
    let eight = write(&cp, "eight.json", &meter("eight", groups(8)));
    cp.kubectl_ok(&["create", "-f", &eight]);

    // 1000 × 1000 pairs: one evaluation passes the per-call limit.
    let large = write(&cp, "large.json", &meter("large", disjoint(1000)));
    let err = refused(&cp, &["create", "-f", &large]);
    assert!(
        err.contains(
            "The Meter \"large\" is invalid: spec: Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: xs and ys overlap"
        ),
        "{err}"
    );

    // 16 full groups: every evaluation is within its limit, together they spend the budget.
    let sixteen = write(&cp, "sixteen.json", &meter("sixteen", groups(16)));
    let err = refused(&cp, &["create", "-f", &sixteen]);
    assert!(
        err.contains("The Meter \"sixteen\" is invalid: spec.groups["),
        "{err}"
    );
    assert!(
        err.contains(
            "Invalid value: \"object\": validation failed due to running out of cost budget, no further validation rules will be run"
        ),
        "{err}"
    );
    let listed = cp.kubectl_ok(&["get", "meters", "-n", "default", "-o", "name"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
}

#[test]
fn kubectl_is_refused_a_crd_with_ill_typed_or_nested_rules() {
    let cp = ControlPlane::start("cel-types");
    let crd = |rule: &str| {
        CRD.replace("gadgets", "typeds")
            .replace("Gadget", "Typed")
            .replace("gadget", "typed")
            .replace("self.replicas <= self.maxReplicas", rule)
    };
    let ill = write(&cp, "ill.yaml", &crd("self.replicas + 'a' > 0"));
    let err = refused(&cp, &["apply", "-f", &ill]);
    assert!(
        err.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas + 'a' > 0\""
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "compilation failed: ERROR: <input>:1:15: found no matching overload for '_+_' applied to '(int, string)'\n | self.replicas + 'a' > 0\n | ..............^"
        ),
        "{err}"
    );
    let not_bool = write(&cp, "notbool.yaml", &crd("self.replicas"));
    let err = refused(&cp, &["apply", "-f", &not_bool]);
    assert!(
        err.contains("cel expression must evaluate to a bool"),
        "{err}"
    );

    // Rules under allOf are not structural, as kube-apiserver has it.
    let nested = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: typeds.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: typeds, singular: typed, kind: Typed}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer}
            allOf:
            - x-kubernetes-validations:
              - rule: self.replicas >= 0
"#;
    let nested = write(&cp, "nested.yaml", nested);
    let err = refused(&cp, &["apply", "-f", &nested]);
    assert!(
        err.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].allOf[0].x-kubernetes-validations: Forbidden: must be empty to be structural"
        ),
        "{err}"
    );
    assert!(
        !cp.kubectl(&["get", "crd", "typeds.example.com"])
            .status
            .success(),
        "no CRD is stored"
    );
}
