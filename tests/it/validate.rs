//! `strata validate`: the real binary on the fixtures under `tests/fixtures/validate`.

use std::process::Output;

use crate::support::{repo_root, strata};

const DIR: &str = "tests/fixtures/validate";

fn validate(paths: &[&str]) -> Output {
    let mut args = vec!["validate"];
    args.extend_from_slice(paths);
    strata(&args, &repo_root())
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(out: &Output) -> Vec<String> {
    stdout(out).lines().map(str::to_owned).collect()
}

#[test]
fn a_valid_xrd_composition_xr_and_claim_pass() {
    let out = validate(&[&format!("{DIR}/valid")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        lines(&out),
        vec!["validated 4 documents in 3 files: 0 errors, 0 warnings"]
    );
}

#[test]
fn an_invalid_xr_reports_every_schema_violation_on_its_own_line() {
    let xrd = format!("{DIR}/valid/xrd.yaml");
    let xrs = format!("{DIR}/invalid-xr.yaml");
    let out = validate(&[&xrd, &xrs]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let f = &xrs;
    assert_eq!(
        lines(&out),
        vec![
            format!(
                r#"error: {f}:6: XPostgres/wrong-type: spec.parameters.size: Invalid value: "string": spec.parameters.size in body must be of type integer: "string""#
            ),
            format!(
                "error: {f}:13: XPostgres/missing-required: spec.parameters.size: Required value"
            ),
            format!(
                r#"error: {f}:21: Postgres/bad-enum: spec.parameters.engine: Unsupported value: "oracle": supported values: "postgres", "mysql""#
            ),
            format!(
                r#"error: {f}:28: XPostgres/bad-pattern: spec.parameters.region: Invalid value: "Mars": spec.parameters.region in body should match '^[a-z]+-[a-z]+-[0-9]$'"#
            ),
            format!(
                "error: {f}:28: XPostgres/bad-pattern: spec.parameters.size: Invalid value: 2000: spec.parameters.size in body should be less than or equal to 1000"
            ),
            format!(
                r#"warning: {f}:31: XPostgress/typo-kind: kind: no loaded XRD defines kind "XPostgress" in group example.org (defined: XPostgres, Postgres); not validated"#
            ),
            "validated 6 documents in 2 files: 5 errors, 1 warning".to_owned(),
        ]
    );
}

#[test]
fn a_composition_with_many_problems_reports_each_with_file_object_and_field() {
    let xrd = format!("{DIR}/valid/xrd.yaml");
    let composition = format!("{DIR}/broken-composition.yaml");
    let out = validate(&[&xrd, &composition]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    // Each finding at the line of its field in the file.
    for (line, expected) in [
        (
            10,
            "spec.patchSets[0].patches[0].type: a PatchSet cannot contain another PatchSet",
        ),
        (13, "spec.resources[0].base.kind: required"),
        (
            16,
            "spec.resources[0].patches[0].patchSetName: cannot find PatchSet by name missing",
        ),
        (
            17,
            r#"spec.resources[0].patches[1].fromFieldPath: invalid field path "spec..size""#,
        ),
        (
            18,
            "spec.resources[0].patches[2].toFieldPath: the XPostgres v1alpha1 schema does not allow `status.adress`",
        ),
        (20, "spec.resources[0].patches[3].combine.string: required"),
        (
            25,
            "spec.resources[0].patches[4].transforms[0].math.multiply: ",
        ),
        (
            27,
            "spec.resources[0].readinessChecks[0].matchString: required for type MatchString",
        ),
        (
            32,
            "spec.resources[1].connectionDetails[0].value: required for type FromValue",
        ),
        (
            30,
            "spec.resources[1].dependsOn[1]: unknown resource `ghost`",
        ),
        (
            12,
            "spec.resources[0]: dependency cycle: db -> config -> db",
        ),
    ] {
        let line = format!("error: {composition}:{line}: Composition/broken: {expected}");
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "missing `{line}` in:\n{text}"
        );
    }
    // A document that does not parse is read past each error: every structural error, then
    // lint's findings on the rest, all at their paths in the file as written.
    let second = format!("error: {composition}:");
    let reported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&second))
        .filter(|l| l.contains(" Composition/unknown-patch-type: "))
        .collect();
    let expected = [
        "44: Composition/unknown-patch-type: spec.resources[0].patches[0].type: unknown variant `FromCompositeFieldPathh`",
        "49: Composition/unknown-patch-type: spec.resources[0].patches[1].transforms[1].type: unknown variant `stringg`",
        r#"50: Composition/unknown-patch-type: spec.resources[0].patches[2].fromFieldPath: invalid field path "spec..engine""#,
        r#"54: Composition/unknown-patch-type: spec.resources[1].patches[0].toFieldPath: invalid field path "data[region""#,
    ];
    assert_eq!(reported.len(), expected.len(), "{text}");
    for (line, want) in reported.iter().zip(expected) {
        assert!(
            line.starts_with(want),
            "`{line}` should start with `{want}`"
        );
    }
    assert_eq!(
        text.lines().last(),
        Some("validated 3 documents in 2 files: 15 errors, 0 warnings")
    );
}

#[test]
fn a_crossplane_v1_xrd_with_a_pipeline_composition_and_a_claim_passes() {
    let out = validate(&[&format!("{DIR}/crossplane-v1")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        lines(&out),
        vec!["validated 3 documents in 2 files: 0 errors, 0 warnings"]
    );
}

#[test]
fn malformed_yaml_fails_with_one_line_naming_the_file() {
    let file = format!("{DIR}/malformed.yaml");
    let out = validate(&[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let lines = lines(&out);
    assert_eq!(lines.len(), 2, "one finding and the summary: {lines:?}");
    assert!(
        lines[0].starts_with(&format!("error: {file}: line 4 column 5: ")),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "validated 0 documents in 1 file: 1 error, 0 warnings"
    );
}

#[test]
fn an_unreadable_path_is_bad_usage() {
    let out = validate(&[&format!("{DIR}/does-not-exist.yaml")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does-not-exist.yaml: cannot read"),
        "{stderr}"
    );
}

#[test]
fn no_files_at_all_is_bad_usage() {
    assert_eq!(validate(&[]).status.code(), Some(2));
}

#[test]
fn a_whole_directory_tree_is_validated_in_sorted_order_and_each_file_once() {
    let out = validate(&[DIR, &format!("{DIR}/malformed.yaml")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let files: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("warning: "))
        .filter_map(|l| l.split(' ').nth(1)?.split(':').next())
        .collect();
    assert!(!files.is_empty(), "{text}");
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted, "findings come in file order:\n{text}");
    assert_eq!(
        text.matches("malformed.yaml: line 4").count(),
        1,
        "named twice, validated once:\n{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l == "validated 21 documents in 12 files: 27 errors, 7 warnings"),
        "{text}"
    );
}

#[test]
fn an_invalid_xrd_is_reported_on_one_line_per_problem() {
    let file = format!("{DIR}/invalid-xrd.yaml");
    let out = validate(&[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let lines = lines(&out);
    assert_eq!(lines.len(), 3, "two findings and the summary: {lines:?}");
    assert_eq!(
        lines[0],
        format!(
            r#"error: {file}:1: CompositeResourceDefinition/caches.example.org: metadata.name must be `xcaches.example.org` (spec.names.plural + "." + spec.group)"#
        )
    );
    assert!(
        lines[1].starts_with(&format!(
            "error: {file}:23: CompositeResourceDefinition/xqueues.example.org: spec.versions[0].schema.openAPIV3Schema: XQueue: compiling schema: openAPIV3Schema.properties[spec].properties[name].pattern: "
        )),
        "{}",
        lines[1]
    );
}

#[test]
fn a_data_flow_edge_against_the_dependency_order_is_a_warning() {
    let file = format!("{DIR}/data-flow-cycle.yaml");
    let out = validate(&[&file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning does not fail: {}",
        stdout(&out)
    );
    assert_eq!(
        lines(&out),
        vec![
            format!(
                "warning: {file}:7: Composition/loop: spec.resources[0]: reads `status.b` of the XR, which `b` writes, \
                 but `b` must come after this resource; that data-flow ordering is ignored because it would close a \
                 dependency cycle"
            ),
            "validated 1 document in 1 file: 0 errors, 1 warning".to_owned(),
        ]
    );
}

#[test]
fn a_misspelt_name_suggests_the_closest_valid_one_at_its_line() {
    let file = format!("{DIR}/misspelt/compositions.yaml");
    let out = validate(&[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        lines(&out),
        vec![
            format!(
                "error: {file}:23: Composition/depends: spec.resources[1].patches[0].fromResource: unknown resource `buckett`; did you mean `bucket`?"
            ),
            format!(
                "error: {file}:20: Composition/depends: spec.resources[1].dependsOn[0]: unknown resource `bukcet`; did you mean `bucket`?"
            ),
            format!(
                "error: {file}:40: Composition/typo: spec.resources[0].dependOn: unknown field `dependOn`, expected one of `name`, `base`, `patches`, `connectionDetails`, `readinessChecks`, `dependsOn`; did you mean `dependsOn`?"
            ),
            format!(
                "warning: {file}:67: Composition/pipeline: spec.pipeline[0].input.resources[0].patches[0].tranforms: unknown field ignored, as function-patch-and-transform ignores it; did you mean `transforms`?"
            ),
            "validated 3 documents in 1 file: 3 errors, 1 warning".to_owned(),
        ]
    );
}

#[test]
fn a_finding_in_a_pipeline_input_names_its_path_and_line_as_written() {
    let file = format!("{DIR}/pipeline-paths/composition.yaml");
    let out = validate(&[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        lines(&out),
        vec![
            format!(
                r#"error: {file}:24: Composition/pipeline: spec.pipeline[0].input.resources[0].patches[0].fromFieldPath: invalid field path "spec..name": unexpected '.' at position 5"#
            ),
            "validated 1 document in 1 file: 1 error, 0 warnings".to_owned(),
        ]
    );
}
