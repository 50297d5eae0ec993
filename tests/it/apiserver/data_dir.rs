//! The data dir is private to its owner and used by one server at a time.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use strata_apiserver::{Server, ServerConfig};

use super::fixture::{Killed, restart, temp_dir};
use crate::support::{strata_up, strata_up_started};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn the_data_dir_store_and_kubeconfig_are_owner_only_and_looser_modes_are_fixed_at_start() {
    let dir = temp_dir("private-data-dir");
    let config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    let server = Server::start(config.clone()).await.unwrap();
    let kubeconfig = server.kubeconfig_path().to_owned();
    assert_eq!(mode(&dir), 0o700, "a new data dir");
    assert_eq!(mode(&dir.join("store.redb")), 0o600, "a new store");
    assert_eq!(mode(&kubeconfig), 0o600, "the kubeconfig");
    server.shutdown().await;

    // Found world-readable (as earlier versions left them): tightened at the next start.
    set_mode(&dir, 0o755);
    set_mode(&dir.join("store.redb"), 0o644);
    set_mode(&kubeconfig, 0o644);
    let server = restart(&config).await;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("store.redb")), 0o600);
    assert_eq!(mode(&kubeconfig), 0o600);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `strata up` on `dir` and waits until it has written its kubeconfig.
fn started(dir: &Path) -> Killed {
    strata_up_started(dir, Duration::from_secs(10))
}

#[test]
fn a_second_strata_up_on_a_data_dir_in_use_names_the_process_using_it() {
    let dir = temp_dir("in-use");
    let first = started(&dir);

    let second = strata_up(&dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("is in use by process {}", first.0.id())),
        "{stderr}"
    );
    assert!(!stderr.contains("corrupt"), "{stderr}");

    // The lock goes with the process, even one killed by SIGKILL.
    drop(first);
    let mut again = started(&dir);
    again.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_encrypted_in_the_store_file_and_read_back_by_kubectl_after_a_restart() {
    use base64::Engine;
    let dir = temp_dir("secrets-at-rest");
    let config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    let server = Server::start(config.clone()).await.unwrap();
    let kubeconfig = server.kubeconfig_path().to_owned();
    let value = "pw-3f9c1d7e5b2a";
    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
    let read_back = |kubeconfig: &Path| {
        let out = super::fixture::kubectl(
            kubeconfig,
            &[
                "get",
                "secret",
                "db",
                "-n",
                "default",
                "-o",
                "jsonpath={.data.password}",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = super::fixture::kubectl(
        &kubeconfig,
        &[
            "create",
            "secret",
            "generic",
            "db",
            "-n",
            "default",
            &format!("--from-literal=password={value}"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_back(&kubeconfig), encoded);
    server.shutdown().await;

    let raw = std::fs::read(dir.join("store.redb")).unwrap();
    let contains = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        !contains(value) && !contains(&encoded),
        "the Secret's value is in the store file"
    );
    assert!(
        contains("k8s:enc:aesgcm:v1:key-1:"),
        "sealed values are in the store file"
    );
    assert_eq!(mode(&dir.join("encryption-keys.json")), 0o600);

    let server = restart(&config).await;
    assert_eq!(
        read_back(server.kubeconfig_path()),
        encoded,
        "after a restart"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_kubernetes_endpoints_follow_the_port_and_default_roles_regain_rules() {
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
    use kube::Api;

    let dir = temp_dir("kubernetes-endpoints");
    let mut config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
    let server = Server::start(config.clone()).await.unwrap();
    let first = server.addr().port();
    let client = super::fixture::client_for(server.kubeconfig_path()).await;
    // Narrowed by an operator who left the role marked for autoupdate.
    let roles: Api<ClusterRole> = Api::all(client);
    let mut view = roles.get("system:aggregate-to-view").await.unwrap();
    view.rules = Some(vec![PolicyRule {
        verbs: vec!["get".into()],
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["configmaps".into()]),
        ..Default::default()
    }]);
    roles
        .replace("system:aggregate-to-view", &Default::default(), &view)
        .await
        .unwrap();
    server.shutdown().await;

    config.listen = loop {
        let addr = strata_test_support::free_addr();
        if addr.port() != first {
            break addr;
        }
    };
    let server = restart(&config).await;
    let port = i32::from(server.addr().port());
    let client = super::fixture::client_for(server.kubeconfig_path()).await;
    let endpoints = Api::<Endpoints>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    let subset = &endpoints.subsets.unwrap()[0];
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, port);
    let service = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap();
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.1"));
    assert_eq!(
        spec.ports.unwrap()[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port))
    );
    let view = Api::<ClusterRole>::all(client)
        .get("system:aggregate-to-view")
        .await
        .unwrap();
    let rules = view.rules.unwrap();
    assert!(
        rules.iter().any(|r| r
            .resources
            .as_ref()
            .is_some_and(|rs| rs.iter().any(|x| x == "deployments"))),
        "the default rules are back: {rules:?}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
