//! The files users start from: the platform APIs in `compositions/` and the developer's side in
//! `examples/` validate cleanly, and every example composite renders with its Composition into
//! the resources the README promises, in graph order.

use serde_json::Value;

use crate::support::{repo_root, strata};

/// `strata render -o json` of `xr` with `composition` (and observed resources): the composite,
/// then `(kind, template)` of every released resource in order.
fn render(xr: &str, composition: &str, observed: Option<&str>) -> (Value, Vec<(String, String)>) {
    let mut args = vec!["render", xr, composition, "-o", "json"];
    if let Some(observed) = observed {
        args.extend(["--observed-resources", observed]);
    }
    let out = strata(&args, &repo_root());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{xr} with {composition}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut documents = items(&stdout).into_iter();
    let composite = documents.next().unwrap();
    let released = documents
        .map(|document| {
            let template =
                document["metadata"]["annotations"]["strata.dev/composition-resource-name"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            (document["kind"].as_str().unwrap().to_owned(), template)
        })
        .collect();
    (composite, released)
}

/// The documents of `-o json` output (a `List`).
fn items(json: &str) -> Vec<Value> {
    let list: Value = serde_json::from_str(json).unwrap();
    assert_eq!(list["kind"], "List", "{list}");
    list["items"].as_array().unwrap().clone()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(kind, template)| ((*kind).to_owned(), (*template).to_owned()))
        .collect()
}

#[test]
fn the_shipped_compositions_and_examples_validate_without_findings() {
    let out = strata(&["validate", "compositions", "examples"], &repo_root());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.trim_end().ends_with(": 0 errors, 0 warnings"),
        "{stdout}"
    );
}

#[test]
fn the_postgres_composition_releases_the_database_only_after_its_password_secret() {
    let (composite, released) = render(
        "examples/composites/postgres.yaml",
        "compositions/postgres/aws.yaml",
        None,
    );
    assert_eq!(released, pairs(&[("Secret", "password")]));
    assert_eq!(
        composite["status"]["conditions"][0]["message"],
        "Unready resources: database, password"
    );
}

#[test]
fn the_secretless_postgres_composition_grants_the_claims_service_account_connect_on_its_database_once_it_exists()
 {
    let (composite, before) = render(
        "examples/composites/postgres-secretless.yaml",
        "compositions/postgres/aws-iam.yaml",
        None,
    );
    assert_eq!(before, pairs(&[("DBInstance", "database")]));
    assert_eq!(
        composite["status"]["conditions"][0]["message"],
        "Unready resources: access, database"
    );
    let out = strata(
        &[
            "render",
            "examples/composites/postgres-secretless.yaml",
            "compositions/postgres/aws-iam.yaml",
            "--observed-resources",
            "examples/composites/postgres-secretless-observed.yaml",
            "-o",
            "json",
        ],
        &repo_root(),
    );
    assert_eq!(out.status.code(), Some(0));
    let documents = items(&String::from_utf8_lossy(&out.stdout));
    let database = &documents[1]["spec"]["forProvider"];
    assert_eq!(database["enableIAMDatabaseAuthentication"], true);
    assert_eq!(database["manageMasterUserPassword"], true);
    assert!(database.get("masterPasswordSecretRef").is_none());
    let role = &documents[2];
    assert_eq!(role["kind"], "Role");
    let trust = &role["spec"]["forProvider"]["trustServiceAccount"];
    assert_eq!(trust["namespace"], "payments");
    assert_eq!(trust["serviceAccount"], "orders");
    let policy: serde_json::Value = serde_json::from_str(
        role["spec"]["forProvider"]["inlinePolicies"]["connect"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        "arn:aws:rds-db:*:*:dbuser:db-ABCDEFGHIJKLMNOPQRSTUVWXYZ/app"
    );
}

#[test]
fn both_objectstore_tiers_grant_the_claims_service_account_on_the_bucket_once_it_exists() {
    for (composition, role) in [
        (
            "compositions/objectstore/gcs-standard.yaml",
            "roles/storage.objectUser",
        ),
        (
            "compositions/objectstore/gcs-archive.yaml",
            "roles/storage.objectUser",
        ),
    ] {
        let (_, released) = render(
            "examples/composites/objectstore.yaml",
            composition,
            Some("examples/composites/objectstore-observed.yaml"),
        );
        assert_eq!(
            released,
            pairs(&[("Bucket", "bucket"), ("BucketIAMMember", "access")]),
            "{composition}"
        );
        let out = strata(
            &[
                "render",
                "examples/composites/objectstore.yaml",
                composition,
                "--observed-resources",
                "examples/composites/objectstore-observed.yaml",
                "-o",
                "json",
            ],
            &repo_root(),
        );
        let member = &items(&String::from_utf8_lossy(&out.stdout))[2]["spec"]["forProvider"];
        assert_eq!(member["bucket"], "uploads-q8v4d-bucket");
        assert_eq!(member["role"], role);
        assert_eq!(
            member["kubernetesServiceAccount"]["serviceAccount"], "uploader",
            "{composition}"
        );
        assert_eq!(member["kubernetesServiceAccount"]["namespace"], "media");
    }
}

#[test]
fn both_objectstore_tiers_render_a_bucket_of_their_storage_class() {
    for (composition, class) in [
        ("compositions/objectstore/gcs-standard.yaml", "STANDARD"),
        ("compositions/objectstore/gcs-archive.yaml", "ARCHIVE"),
    ] {
        let out = strata(
            &[
                "render",
                "examples/composites/objectstore.yaml",
                composition,
                "-o",
                "json",
            ],
            &repo_root(),
        );
        assert_eq!(out.status.code(), Some(0), "{composition}");
        let documents = items(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(documents.len(), 2, "{composition}: the XR and its bucket");
        assert_eq!(documents[1]["kind"], "Bucket");
        assert_eq!(
            documents[1]["spec"]["forProvider"]["storageClass"], class,
            "{composition}"
        );
    }
}

#[test]
fn the_multi_cloud_environment_releases_its_database_and_bucket_grant_once_the_bucket_is_observed_ready()
 {
    let (_, before) = render(
        "examples/composites/app-environment.yaml",
        "compositions/app-environment/aws-gcp.yaml",
        None,
    );
    assert_eq!(before, pairs(&[("Bucket", "assets")]));
    let (_, after) = render(
        "examples/composites/app-environment.yaml",
        "compositions/app-environment/aws-gcp.yaml",
        Some("examples/composites/app-environment-observed.yaml"),
    );
    assert_eq!(
        after,
        pairs(&[
            ("Bucket", "assets"),
            ("DBInstance", "database"),
            ("BucketIAMMember", "assets-access"),
        ]),
        "the Role waits for the database's resource id"
    );
}
