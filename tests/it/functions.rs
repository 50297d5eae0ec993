//! Function pipelines in `strata render` with a real third-party function: function-pythonic
//! (installed by `pip install -r tests/requirements.txt`) on a free loopback port, called over
//! Crossplane's gRPC protocol, between native patch-and-transform and auto-ready steps.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{repo_root, strata};

#[path = "../support/emulators.rs"]
mod emulators;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "strata-it-functions-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/functions")
}

/// The functions file with function-pythonic at `target`.
fn functions_file(dir: &Path, target: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixtures().join("functions.yaml.in")).unwrap();
    let path = dir.join("functions.yaml");
    std::fs::write(&path, text.replace("TARGET", target)).unwrap();
    path
}

fn documents(stdout: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stdout);
    text.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect()
}

fn by_resource_name<'a>(docs: &'a [Value], name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| {
        d.pointer("/metadata/annotations/strata.dev~1composition-resource-name")
            .and_then(Value::as_str)
            == Some(name)
    })
}

#[test]
fn a_pipeline_with_function_pythonic_renders_like_crossplane_render() {
    let pythonic = emulators::Emulator::function_pythonic();
    let scratch = Scratch::new("pythonic");
    let functions = functions_file(&scratch.0, pythonic.address());
    let dir = fixtures();
    let functions = functions.to_str().unwrap();

    // Nothing observed yet: both resources are desired, none Ready.
    let out = strata(&["render", "xr.yaml", "composition.yaml", functions], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "render failed: {stderr}");
    let docs = documents(&out.stdout);
    assert_eq!(
        docs.len(),
        3,
        "the XR and two composed resources: {docs:#?}"
    );
    let xr = &docs[0];
    assert_eq!(xr["kind"], "XApp");
    assert_eq!(xr["status"]["greeting"], "hello from eu-west-1");
    let ready = xr["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["message"], "Unready resources: app, settings");
    let settings = by_resource_name(&docs, "settings").expect("the native step's resource");
    assert_eq!(settings["data"]["region"], "eu-west-1");
    let app = by_resource_name(&docs, "app").expect("function-pythonic's resource");
    assert_eq!(app["data"]["greeting"], "hello from eu-west-1");
    assert_eq!(app["data"]["replicas"], "3");
    assert_eq!(app["metadata"]["name"], "web-app");
    assert_eq!(app["metadata"]["ownerReferences"][0]["kind"], "XApp");

    // Both observed and Ready: auto-ready (native) marks them, the XR is Ready.
    let out = strata(
        &[
            "render",
            "xr.yaml",
            "composition.yaml",
            functions,
            "--observed-resources",
            "observed.yaml",
            "--include-context",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&out.stdout);
    let ready = docs[0]["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["status"], "True", "{docs:#?}");
    let context = docs.last().unwrap();
    assert_eq!(context["kind"], "Context");
    assert_eq!(context["apiVersion"], "render.crossplane.io/v1beta1");
}

#[test]
fn an_unreachable_function_is_one_error_naming_the_step_and_the_function() {
    let scratch = Scratch::new("unreachable");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let functions = functions_file(&scratch.0, &format!("127.0.0.1:{port}"));
    let out = strata(
        &[
            "render",
            "xr.yaml",
            "composition.yaml",
            functions.to_str().unwrap(),
            "--timeout",
            "5s",
        ],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing is printed on failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: step \"app\" (function \"function-pythonic\"): cannot reach 127.0.0.1:"
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_step_whose_function_is_missing_from_the_functions_file_is_a_usage_error() {
    let out = strata(&["render", "xr.yaml", "composition.yaml"], &fixtures());
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step \"app\" uses function \"function-pythonic\", which is not in the functions file (give one: strata render XR COMPOSITION FUNCTIONS)"),
        "{stderr}"
    );
}

#[test]
fn a_sequencer_orders_function_output_in_render_and_graph() {
    let pythonic = emulators::Emulator::function_pythonic();
    let scratch = Scratch::new("sequenced");
    let functions = functions_file(&scratch.0, pythonic.address());
    let functions = functions.to_str().unwrap();
    let dir = fixtures();

    // Nothing exists: only the database is released, the apps wait for it.
    let out = strata(&["render", "xr.yaml", "sequenced.yaml", functions], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let docs = documents(&out.stdout);
    let names: Vec<&str> = docs[1..]
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-db"]);
    assert_eq!(
        stderr,
        "warning: resource \"app-1\" is withheld: waiting for db to exist and be Ready\n\
         warning: resource \"app-2\" is withheld: waiting for db to exist and be Ready\n"
    );

    // The database exists and is Ready: the apps are released after it.
    let out = strata(
        &[
            "render",
            "xr.yaml",
            "sequenced.yaml",
            functions,
            "--observed-resources",
            "observed-db.yaml",
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&out.stdout);
    let names: Vec<&str> = docs[1..]
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-db", "web-app-1", "web-app-2"]);

    // The graph of the pipeline, from a render.
    let out = strata(
        &[
            "graph",
            "sequenced.yaml",
            "--xr",
            "xr.yaml",
            "--functions",
            functions,
        ],
        &dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Composition sequenced.yaml (function pipeline, as rendered)\n\
         resources in creation order:\n  1. db\n  2. app-1 <- db\n  3. app-2 <- db\n\
         creation waves:\n  1: db\n  2: app-1, app-2\n\
         deletion waves:\n  1: app-1, app-2\n  2: db\n\
         withheld by this render:\n  app-1 waits for db\n  app-2 waits for db\n"
    );
}

#[test]
fn the_environment_configs_step_selects_what_a_remote_function_reads_from_the_context() {
    let pythonic = emulators::Emulator::function_pythonic();
    let scratch = Scratch::new("environment");
    let functions = functions_file(&scratch.0, pythonic.address());
    let out = strata(
        &[
            "render",
            "xr.yaml",
            "environment.yaml",
            functions.to_str().unwrap(),
            "--environment",
            "environment-configs.yaml",
        ],
        &fixtures(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = documents(&out.stdout);
    let app = by_resource_name(&docs, "app").expect("function-pythonic's resource");
    // Merging both configs in order would give `development`: the step selects `prod` only.
    assert_eq!(app["data"]["tier"], "production", "{docs:#?}");
}

#[test]
fn a_python_sdk_function_serving_only_v1beta1_gets_requirements_credentials_and_context() {
    let probe = emulators::Emulator::probe_function(&fixtures().join("probe_function.py"));
    let scratch = Scratch::new("probe");
    let text = std::fs::read_to_string(fixtures().join("probe.yaml")).unwrap();
    let (composition, function) = text.split_once("\n---\n").unwrap();
    std::fs::write(scratch.0.join("composition.yaml"), composition).unwrap();
    std::fs::write(
        scratch.0.join("functions.yaml"),
        function.replace("TARGET", probe.address()),
    )
    .unwrap();
    let fixture = |f: &str| fixtures().join(f).display().to_string();
    let out = strata(
        &[
            "render",
            &fixture("xr.yaml"),
            "composition.yaml",
            "functions.yaml",
            "--required-resources",
            &fixture("probe-required.yaml"),
            "--function-credentials",
            &fixture("probe-credentials.yaml"),
            "--context-values",
            "example.org/greeting=\"hello\"",
            "--include-function-results",
            "--include-context",
        ],
        &scratch.0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "render failed: {stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("s3cr3t-value"),
        "a credential's value is never printed"
    );
    let docs = documents(&out.stdout);
    let probed = by_resource_name(&docs, "probe").expect("the probe's resource");
    // The requirement was answered (the step ran again with the ConfigMap), the credential and
    // the context value reached the function.
    assert_eq!(probed["data"]["tier"], "gold", "{probed}");
    assert_eq!(probed["data"]["tokenLength"], "12");
    assert_eq!(probed["data"]["greeting"], "hello");
    let xr = &docs[0];
    let conditions = xr["status"]["conditions"].as_array().unwrap();
    let probed_condition = conditions.iter().find(|c| c["type"] == "Probed").unwrap();
    assert_eq!(probed_condition["status"], "True", "{xr}");
    let ready = conditions.iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(
        ready["status"], "True",
        "the function said READY_TRUE: {xr}"
    );
    let result = docs
        .iter()
        .find(|d| d["kind"] == "Result")
        .expect("the step's result");
    assert_eq!(result["severity"], "SEVERITY_WARNING", "{result}");
    assert_eq!(result["message"], "probe ran over v1beta1");
    assert_eq!(result["step"], "probe");
    let context = docs.iter().find(|d| d["kind"] == "Context").unwrap();
    assert_eq!(context["fields"]["example.org/probed"], true, "{context}");
}
