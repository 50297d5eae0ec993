//! Connections are bounded and timed out: a client sending headers a byte at a time and an idle
//! keep-alive connection are closed, and connections over the per-client bound are refused
//! while other clients are served. Timeouts are short here (set by `strata up`'s flags); the
//! assertions only ask for "closed within a generous bound".

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use super::fixture::{ControlPlane, Killed, temp_dir};

/// Where a control plane serves, and its data dir (for its CA).
struct Endpoint<'a> {
    dir: &'a Path,
    addr: SocketAddr,
}

impl ControlPlane {
    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            dir: &self.dir,
            addr: self.addr,
        }
    }
}

/// `strata up --no-controllers` with `flags`, killed when dropped.
struct Up {
    _child: Killed,
    dir: PathBuf,
    kubeconfig: PathBuf,
    addr: SocketAddr,
}

impl Up {
    fn start(name: &str, flags: &[&str]) -> Up {
        let dir = temp_dir(name);
        let kubeconfig = dir.join("kubeconfig");
        let child = Killed(
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(["up", "--no-controllers", "--listen", "127.0.0.1:0"])
                .args(flags)
                .arg("--data-dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        for _ in 0..400 {
            let text = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
            let server = text.split("https://").nth(1).map(|rest| {
                rest.chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                    .collect::<String>()
            });
            if let Some(addr) = server.and_then(|a| a.parse().ok()) {
                return Up {
                    _child: child,
                    dir,
                    kubeconfig,
                    addr,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("strata up {flags:?} did not start");
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            dir: &self.dir,
            addr: self.addr,
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS client trusting the control plane's CA.
fn connector(at: &Endpoint) -> TlsConnector {
    strata_apiserver::tls::install_default_crypto_provider();
    let pem = std::fs::read_to_string(at.dir.join(strata_apiserver::tls::CA_CERT_FILE)).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.into()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to the control plane from the loopback address `from`.
async fn connect(
    at: &Endpoint<'_>,
    from: [u8; 4],
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::from(from), 0))?;
    let tcp = socket.connect(at.addr).await?;
    let name = rustls::pki_types::ServerName::IpAddress(at.addr.ip().into());
    connector(at).connect(name, tcp).await
}

/// Sends one request for `/healthz` and reads the status line of the answer.
async fn healthz(stream: &mut TlsStream<tokio::net::TcpStream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: strata\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Waits (up to `bound`) for the server to close `stream`: a read returning end of file or an
/// error.
async fn closed_within(stream: &mut (impl tokio::io::AsyncRead + Unpin), bound: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_client_sending_headers_a_byte_at_a_time_and_an_idle_keep_alive_are_closed_while_kubectl_works()
 {
    let up = Up::start(
        "conn-timeouts",
        &[
            "--request-header-timeout",
            "1s",
            "--idle-connection-timeout",
            "2s",
        ],
    );
    let at = up.endpoint();

    // Slowloris: a request line and then one header byte every 100 ms, never finishing.
    let slow = connect(&at, [127, 0, 0, 1]).await.unwrap();
    let (mut reader, mut writer) = tokio::io::split(slow);
    let dribble = tokio::spawn(async move {
        if writer
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..300 {
            if writer.write_all(b"X").await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    dribble.abort();
    assert!(
        closed.is_ok(),
        "a client still sending its headers after 20 s (header timeout 1 s) was not disconnected"
    );

    // 200 slow or idle sockets lock no one out: 100 that never start TLS and 100 that finish
    // it and never send a request. kubectl is served while they are open; all of them close.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(at.addr).await.unwrap());
    }
    let mut quiet = Vec::new();
    for _ in 0..100 {
        quiet.push(connect(&at, [127, 0, 0, 1]).await.unwrap());
    }
    let out = super::fixture::kubectl(
        &up.kubeconfig,
        &["get", "namespace", "default", "-o", "name"],
    );
    assert!(
        out.status.success(),
        "kubectl locked out by 200 slow sockets: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(30)).await,
            "a socket that never started TLS was not closed (handshake timeout 10 s)"
        );
    }
    for s in &mut quiet {
        assert!(
            closed_within(s, Duration::from_secs(30)).await,
            "a TLS connection that sent no request was not closed (header timeout 1 s)"
        );
    }

    // An answered request keeps the connection open; idle after it, the connection is closed.
    let mut idle = connect(&at, [127, 0, 0, 1]).await.unwrap();
    assert_eq!(healthz(&mut idle).await, "HTTP/1.1 200 OK");
    assert!(
        closed_within(&mut idle, Duration::from_secs(20)).await,
        "an idle keep-alive connection (idle timeout 2 s) was not closed within 20 s"
    );

    // Real clients keep working with these timeouts: kubectl, and a kube-rs watch that sees no
    // event for longer than both timeouts.
    let out = super::fixture::kubectl(&up.kubeconfig, &["get", "namespaces", "-o", "name"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("namespace/default"), "{stdout}");
    let client = super::fixture::client_for(&up.kubeconfig).await;
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    let watch_params = kube::api::WatchParams::default().timeout(5);
    let watch = namespaces.watch(&watch_params, "0").await.unwrap();
    let mut watch = std::pin::pin!(watch);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = watch.next().await {
            event.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the watch ended at its timeout (5 s)");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "a quiet watch is a request in flight, not an idle connection: it ran to its own timeout"
    );
}

#[tokio::test]
async fn connections_over_the_per_client_bound_are_refused_while_another_client_is_served() {
    let cp = ControlPlane::start_with("conn-bound", |c| {
        c.connections.max_connections_per_client = 3;
        c.connections.max_connections = 10;
    });
    let at = cp.endpoint();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&at, [127, 0, 0, 1]).await.unwrap());
    }
    // The fourth from the same address is closed before its TLS handshake completes.
    let refused = tokio::time::timeout(Duration::from_secs(15), connect(&at, [127, 0, 0, 1]))
        .await
        .expect("a refused connection is closed, not left hanging");
    assert!(
        refused.is_err(),
        "a fourth connection from 127.0.0.1 (bound 3) was served"
    );

    // Another client address is served meanwhile.
    let mut other = connect(&at, [127, 0, 0, 2]).await.unwrap();
    assert_eq!(healthz(&mut other).await, "HTTP/1.1 200 OK");
    // The held connections work.
    assert_eq!(healthz(&mut held[0]).await, "HTTP/1.1 200 OK");

    // Closing them frees their slots: kubectl from 127.0.0.1 is served again.
    drop(held);
    let mut last = String::new();
    for _ in 0..50 {
        let out = cp.kubectl(&["get", "namespaces", "-o", "name"]);
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("kubectl was not served after the held connections closed: {last}");
}
