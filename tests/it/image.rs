//! The container image: `scripts/image` packs the test build's `strata` binary into an OCI
//! layout with umoci, without a Docker daemon. Its config must carry the Dockerfile's entrypoint,
//! user and labels (the two describe one image), `deploy/` must name it, and the binary must
//! answer `--help` from the unpacked root filesystem alone, as the image's non-root user.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{TempDir, repo_root};

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("`id -u` runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON blob of the OCI layout, by its digest (`sha256:<hex>`).
fn blob(layout: &Path, digest: &Value) -> Value {
    let digest = digest.as_str().unwrap();
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("digest {digest} is not sha256"));
    read_json(&layout.join("blobs/sha256").join(hex))
}

/// The config of the image tagged `tag` in the OCI layout: index.json → manifest → config.
fn image_config(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("index.json has no tag {tag}: {index}"));
    let manifest = blob(layout, &entry["digest"]);
    blob(layout, &manifest["config"]["digest"])
}

/// The Dockerfile's `org.opencontainers.image.*` labels (one `key="value"` per line), with
/// `${VERSION}` replaced by the default of its `ARG VERSION=`.
fn dockerfile_labels(dockerfile: &str) -> BTreeMap<String, String> {
    let version = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG VERSION="))
        .expect("the Dockerfile has `ARG VERSION=<default>`");
    dockerfile
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("LABEL ")
                .trim_end_matches('\\')
                .trim()
        })
        .filter(|l| l.starts_with("org.opencontainers.image."))
        .map(|l| {
            let (key, value) = l.split_once('=').unwrap();
            let value = value.trim_matches('"').replace("${VERSION}", version);
            (key.to_string(), value)
        })
        .collect()
}

#[test]
fn dockerfile_labels_are_the_four_required_ones_at_the_crate_version() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let labels = dockerfile_labels(&dockerfile);
    for key in ["title", "source", "licenses", "version"] {
        assert!(
            labels.contains_key(&format!("org.opencontainers.image.{key}")),
            "the Dockerfile lacks label org.opencontainers.image.{key}: {labels:?}"
        );
    }
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    assert!(lines.contains(&r#"ENTRYPOINT ["/usr/local/bin/strata"]"#));
    assert!(lines.contains(&"USER 65532:65532"));
}

#[test]
fn deploy_runs_the_image_scripts_image_tags_with_the_crate_version() {
    let kustomization: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    let deployment: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(repo_root().join("deploy/deployment.yaml")).unwrap(),
    )
    .unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "strata");
    assert_eq!(kustomization["images"][0]["name"], "strata");
    assert_eq!(
        kustomization["images"][0]["newTag"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn scripts_image_builds_the_dockerfiles_image_whose_binary_runs_as_nonroot_from_its_rootfs() {
    let tmp = TempDir::new("image-build");
    let layout = tmp.0.join("oci");
    let tag = "it";
    let out = Command::new(repo_root().join("scripts/image"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_strata"))
        .arg("--out")
        .arg(&layout)
        .args(["--tag", tag])
        .output()
        .expect("scripts/image runs");
    assert!(
        out.status.success(),
        "scripts/image failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.lines().last(),
        Some(format!("{}:{tag}", layout.display()).as_str())
    );

    let image = image_config(&layout, tag);
    let config = &image["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/strata"])
    );
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(image["os"], "linux");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).unwrap();
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    assert_eq!(labels, dockerfile_labels(&dockerfile));

    if !running_as_root() {
        eprintln!(
            "SKIPPED the unpack and chroot part of {}: it needs root (CI runs as root)",
            module_path!()
        );
        return;
    }
    let bundle = tmp.0.join("bundle");
    let unpacked = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle)
        .output()
        .expect("umoci runs");
    assert!(
        unpacked.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    let rootfs = bundle.join("rootfs");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("nonroot:x:65532:")),
        "{group}"
    );
    assert!(rootfs.join("tmp").is_dir());

    // Nothing but the rootfs: the binary finds its loader and libraries there or fails here.
    let help = Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(rootfs)
        .args(["/usr/local/bin/strata", "--help"])
        .output()
        .expect("chroot runs");
    let stdout = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "strata --help in the image's rootfs failed: {stdout}{}",
        String::from_utf8_lossy(&help.stderr)
    );
    assert!(stdout.contains("Usage: strata <COMMAND>"), "{stdout}");
    assert!(stdout.contains("run "), "{stdout}");
}

/// Every (API group, resource, verb) a ClusterRole's rules grant.
fn grants(role: &Value) -> std::collections::BTreeSet<(String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = std::collections::BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

#[test]
fn deploy_grants_the_controllers_what_strata_up_grants_them() {
    use strata_apiserver::rbac::bootstrap;
    let text = std::fs::read_to_string(repo_root().join("deploy/clusterrole.yaml")).unwrap();
    let documents: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    let named = |name: &str| {
        documents
            .iter()
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("deploy/clusterrole.yaml has no {name}"))
            .clone()
    };
    let up = bootstrap::cluster_roles();
    let up_named = |name: &str| {
        up.iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        named("strata")["aggregationRule"],
        up_named(bootstrap::CONTROLLERS_ROLE)["aggregationRule"],
        "the same labels grant to the controllers on a cluster and on strata up"
    );
    // On a cluster the Lease is the controllers' namespace's (deploy/role.yaml), and `strata
    // run` writes no ClusterRoles unless asked to.
    let mut base = grants(&up_named(bootstrap::CONTROLLERS_BASE_ROLE));
    base.retain(|(g, r, _)| {
        r != "leases" && !(g == "rbac.authorization.k8s.io" && r == "clusterroles")
    });
    assert_eq!(grants(&named("strata-core")), base);
}
