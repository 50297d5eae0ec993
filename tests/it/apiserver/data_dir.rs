//! The data dir is private to its owner.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use strata_apiserver::{Server, ServerConfig};

use super::fixture::temp_dir;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Starts a server on a data dir a server of this process just shut down: its store closes once
/// the store writer thread has finished, a moment after `shutdown` returns.
async fn restart(config: &ServerConfig) -> Server {
    for _ in 0..100 {
        match Server::start(config.clone()).await {
            Ok(server) => return server,
            Err(e) if e.to_string().contains("in use") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("restarting: {e}"),
        }
    }
    panic!("the data dir was not released after shutdown");
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
