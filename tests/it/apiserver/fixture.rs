//! A control plane for one test: served from its own runtime thread on a free loopback port,
//! stopped and its data dir removed on drop.

use std::path::{Path, PathBuf};
use std::process::Output;

use strata_apiserver::{Server, ServerConfig};
pub use strata_test_support::{Killed, kubectl, temp_dir};

pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    /// Where the API is served.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlPlane {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, |_| {})
    }

    pub fn start_with(name: &str, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = temp_dir(name);
        let mut config = ServerConfig::new(dir.clone(), "127.0.0.1:0".parse().unwrap());
        configure(&mut config);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::start(config).await.unwrap();
                ready_tx
                    .send((server.kubeconfig_path().to_owned(), server.addr()))
                    .unwrap();
                let _ = stopped.await;
                server.shutdown().await;
            });
        });
        let (kubeconfig, addr) = ready_rx.recv().expect("the control plane started");
        ControlPlane {
            dir,
            kubeconfig,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig).await
    }

    /// Runs the real kubectl against this control plane.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig, args)
    }

    /// Runs kubectl and fails the test unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        strata_test_support::kubectl_ok(&self.kubeconfig, args)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    strata_apiserver::tls::install_default_crypto_provider();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Starts a server on a data dir a server of this process just shut down: its store closes once
/// the store writer thread has finished, a moment after `shutdown` returns.
pub async fn restart(config: &ServerConfig) -> Server {
    for _ in 0..100 {
        match Server::start(config.clone()).await {
            Ok(server) => return server,
            Err(e) if e.to_string().contains("in use") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("restarting: {e}"),
        }
    }
    panic!("the data dir was not released after shutdown");
}
