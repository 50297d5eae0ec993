//! Function pipelines in `strata render` with a real third-party function: function-pythonic
//! (installed by `pip install -r tests/requirements.txt`) on a free loopback port, called over
//! Crossplane's gRPC protocol, between native patch-and-transform and auto-ready steps.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{repo_root, strata, strata_up};

use strata_test_support::{TempDir, emulators, free_port};

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
    let scratch = TempDir::new("functions-pythonic");
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
    let scratch = TempDir::new("functions-unreachable");
    let port = free_port();
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

/// `strata up --functions`: every bad entry of the file is one error naming the entry and its
/// field, and the command stops before it starts anything or writes to its data directory; a
/// good file lets it start.
#[test]
fn a_bad_functions_file_for_strata_up_is_one_error_naming_the_field_and_changes_nothing() {
    let scratch = TempDir::new("functions-file");
    let path = scratch.0.join("functions.yaml");
    let data = scratch.0.join("data");
    for (text, message) in [
        (
            "functions:\n- {name: b, address: 'x:1'}\n",
            "functions[0].tls (b)",
        ),
        (
            "functions:\n- {name: b, command: [x], tls: {caFile: a, certFile: b, keyFile: c, serverName: d}}\n",
            "a command's certificates are Strata's own",
        ),
        (
            "functions:\n- {name: b, address: 'x:1', insecure: true, tls: {caFile: a, certFile: b, keyFile: c, serverName: d}}\n",
            "give tls or insecure, not both",
        ),
        (
            "functions:\n- {name: b}\n",
            "functions[0] (b): address, command or package is required",
        ),
        (
            "functions:\n- {name: b, address: 'x:1', insecure: true, command: [x]}\n",
            "give one of address, command or package",
        ),
        (
            "functions:\n- {name: b, command: []}\n",
            "functions[0].command (b)",
        ),
        (
            "functions:\n- {name: b, command: [x]}\n- {name: b, command: [y]}\n",
            "functions[1].name: function \"b\" is configured twice",
        ),
        (
            "functions:\n- {name: b, comand: [x]}\n",
            "not a functions file",
        ),
        (
            "functions:\n- {name: b, package: 'r.example/b:1', runtime: Pod}\n",
            "functions[0].runtime (b): unknown runtime \"Pod\"",
        ),
        (
            "functions:\n- {name: b, package: 'r.example/b:1', namespace: x}\n",
            "functions[0].namespace (b): only for runtime: Deployment",
        ),
        (
            "functions:\n- {name: b, command: [x], runtime: Deployment}\n",
            "runtime and namespace are for a package",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let out = strata_up(&data)
            .arg("--functions")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{text}: a usage error: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "{text}: {stderr}");
        assert!(stderr.contains(message), "{text}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{text}: one error (with a YAML error's excerpt) and nothing else: {stderr}"
        );
        assert!(
            !data.exists(),
            "{text}: nothing is written before the file is checked"
        );
    }
    // A good file (a function at an address, dialled without TLS) passes the check: the
    // control plane starts and writes its kubeconfig.
    std::fs::write(
        &path,
        "functions:\n- {name: b, address: '127.0.0.1:9', insecure: true}\n",
    )
    .unwrap();
    let _up = strata_test_support::Killed(
        strata_up(&data)
            .arg("--functions")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let kubeconfig = data.join("kubeconfig");
    strata_test_support::eventually(
        "strata up with a good functions file to write its kubeconfig",
        std::time::Duration::from_secs(60),
        || kubeconfig.exists().then_some(()),
    );
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
    let scratch = TempDir::new("functions-sequenced");
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

    // Without a render there is no graph to show: one error saying what to give.
    let out = strata(&["graph", "sequenced.yaml"], &dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("give --xr XR and --functions FUNCTIONS"),
        "{stderr}"
    );
}

#[test]
fn the_environment_configs_step_selects_what_a_remote_function_reads_from_the_context() {
    let pythonic = emulators::Emulator::function_pythonic();
    let scratch = TempDir::new("functions-environment");
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
    let scratch = TempDir::new("functions-probe");
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
            "--include-connection-details",
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
    // The XR's connection details the function set.
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap();
    assert_eq!(
        secret["data"]["url"], "aHR0cHM6Ly9wcm9iZS5leGFtcGxl",
        "https://probe.example: {secret}"
    );

    // A Fatal result stops the pipeline: one error naming the step, nothing printed.
    let out = strata(
        &[
            "render",
            &fixture("xr.yaml"),
            "composition.yaml",
            "functions.yaml",
            "--function-credentials",
            &fixture("probe-credentials.yaml"),
            "--context-values",
            "example.org/fatal=true",
        ],
        &scratch.0,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing is printed after a Fatal result"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step \"probe\" (function \"function-probe\") returned a fatal result: probe failed on purpose"),
        "{stderr}"
    );

    // A function that crashes during the call: one error naming the step, no hang.
    let out = strata(
        &[
            "render",
            &fixture("xr.yaml"),
            "composition.yaml",
            "functions.yaml",
            "--function-credentials",
            &fixture("probe-credentials.yaml"),
            "--context-values",
            "example.org/crash=true",
            "--timeout",
            "10s",
        ],
        &scratch.0,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: step \"probe\" (function \"function-probe\"): "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `curl` with the arguments; its stdout.
fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_file(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

/// Pushes a blob to `registry` (`host:port`) under `repository`; its descriptor's digest.
fn push_blob(registry: &str, repository: &str, path: &Path) -> String {
    let digest = sha256_file(path);
    let headers = curl(&[
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{registry}/v2/{repository}/blobs/uploads/"),
    ]);
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("an upload location")
        .trim()
        .to_owned();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{registry}{location}")
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", path.display()),
        &format!("{location}{separator}digest={digest}"),
    ]);
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_package_pulled_from_a_registry_runs_without_docker_with_mtls() {
    use strata_functions::certs::FunctionCa;
    use strata_functions::process::Supervised;
    use strata_functions::proto::RunFunctionRequest;
    use strata_functions::transport::{
        FunctionEndpoint, FunctionRunner, GrpcFunctions, ProtocolVersion,
    };

    strata_apiserver::tls::install_default_crypto_provider();
    let scratch = TempDir::new("functions-oci");
    let root = scratch.0.join("registry");
    std::fs::create_dir_all(&root).unwrap();
    let registry = emulators::Emulator::docker_registry(&root);
    let registry_address = registry.address().to_owned();

    // The image: one gzip layer holding the probe function as /function, its entrypoint.
    let rootfs = scratch.0.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy(
        fixtures().join("probe_function.py"),
        rootfs.join("function"),
    )
    .unwrap();
    let layer = scratch.0.join("layer.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs)
        .arg("function")
        .status()
        .unwrap();
    assert!(tar.success());
    let repository = "functions/probe";
    let layer_digest = push_blob(&registry_address, repository, &layer);
    let config = scratch.0.join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Entrypoint": ["/function"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        })
        .to_string(),
    )
    .unwrap();
    let config_digest = push_blob(&registry_address, repository, &config);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let manifest = scratch.0.join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": size(&config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": size(&layer)}],
        })
        .to_string(),
    )
    .unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", manifest.display()),
        &format!("http://{registry_address}/v2/{repository}/manifests/v0.0.1"),
    ]);

    // Pulled, checked by digest, unpacked and cached; a second pull is the same cache entry.
    let cache = scratch.0.join("cache");
    let package = format!("{registry_address}/{repository}:v0.0.1");
    let settings = strata_functions::oci::Registry {
        plain_http: true,
        timeout: std::time::Duration::from_secs(30),
    };
    let pulled = strata_functions::oci::pull(&package, &cache, &settings)
        .await
        .unwrap();
    assert!(pulled.argv[0].ends_with("/rootfs/function"), "{pulled:?}");
    assert_eq!(
        strata_functions::oci::pull(&package, &cache, &settings)
            .await
            .unwrap(),
        pulled
    );
    let missing = strata_functions::oci::pull(
        &format!("{registry_address}/{repository}:v9"),
        &cache,
        &settings,
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("HTTP 404"), "{missing}");

    // Run as a local process with mTLS from Strata's CA, and called over gRPC (the probe
    // serves only v1beta1: the runner falls back as Crossplane does).
    let ca = FunctionCa::new().unwrap();
    let certs = ca.server_dir(&scratch.0, "function-probe").unwrap();
    let mut argv = pulled.argv.clone();
    argv.extend(["--address".to_owned(), "{address}".to_owned()]);
    let process = Supervised::start_with(
        "function-probe",
        &argv,
        vec![(
            "TLS_SERVER_CERTS_DIR".to_owned(),
            certs.display().to_string(),
        )],
        Some(certs.clone()),
    )
    .unwrap();
    let runner = GrpcFunctions::new(
        std::collections::BTreeMap::from([(
            "function-probe".to_owned(),
            FunctionEndpoint {
                address: process.address.clone(),
                tls: Some(ca.client_tls()),
                protocol: ProtocolVersion::V1,
            },
        )]),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let rsp = runner
        .run("function-probe", RunFunctionRequest::default())
        .await
        .unwrap();
    let requirements = rsp.requirements.expect("the probe asks for its settings");
    assert!(
        requirements.extra_resources.contains_key("settings"),
        "{requirements:?}"
    );
    // Without Strata's client certificate the function refuses the call.
    let stranger = FunctionCa::new().unwrap();
    let refused = GrpcFunctions::new(
        std::collections::BTreeMap::from([(
            "function-probe".to_owned(),
            FunctionEndpoint {
                address: process.address.clone(),
                tls: Some(stranger.client_tls()),
                protocol: ProtocolVersion::V1,
            },
        )]),
        std::time::Duration::from_secs(10),
    )
    .unwrap()
    .run("function-probe", RunFunctionRequest::default())
    .await;
    assert!(refused.is_err(), "a client the CA did not sign is refused");
    process.stop();
    assert!(!certs.exists(), "the certificates go with the process");
}
