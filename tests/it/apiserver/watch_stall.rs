//! A watcher that stops reading is closed once its bounded buffer stays full (the client lists
//! again, as with kube-apiserver), instead of the server holding a growing backlog for it.

use std::process::Command;

use super::fixture::ControlPlane;

/// Opens a watch of ConfigMaps over TLS with the kubeconfig's token (a file appearing tells the
/// test it is connected), reads nothing until the test has written every event (a second file
/// appears) and `stall` seconds more, then reads to the end and prints how many events it got
/// and whether the stream ended. Waiting for the writes, not a fixed time, keeps the test
/// independent of how fast a loaded machine creates them.
const STALLED_CLIENT: &str = r#"
import base64, json, os, socket, ssl, sys, time, urllib.parse, yaml
kubeconfig, ready, written, stall = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
config = yaml.safe_load(open(kubeconfig))
server = urllib.parse.urlparse(config["clusters"][0]["cluster"]["server"])
token = config["users"][0]["user"]["token"]
ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
context = ssl.create_default_context(cadata=ca)
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
raw.connect((server.hostname, server.port))
conn = context.wrap_socket(raw, server_hostname=server.hostname)
conn.sendall(("GET /api/v1/namespaces/default/configmaps?watch=1 HTTP/1.1\r\nHost: x\r\n"
              "Authorization: Bearer " + token + "\r\nConnection: close\r\n\r\n").encode())
open(ready, "w").close()
deadline = time.time() + 120
while not os.path.exists(written) and time.time() < deadline:
    time.sleep(0.05)
time.sleep(stall)
conn.settimeout(20)
data = b""
ended = False
while True:
    try:
        chunk = conn.recv(1 << 16)
    except socket.timeout:
        break
    if not chunk:
        ended = True
        break
    data += chunk
print(json.dumps({"events": data.count(b'"type":"ADDED"'), "ended": ended}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_stops_reading_is_closed_and_others_are_served() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};

    let cp = ControlPlane::start("watch-stall");
    let ready = cp.dir.join("watching");
    let written = cp.dir.join("written");
    let client_run = {
        let kubeconfig = cp.kubeconfig.clone();
        let ready = ready.clone();
        let written = written.clone();
        std::thread::spawn(move || {
            Command::new("python3")
                .args(["-c", STALLED_CLIENT])
                .arg(&kubeconfig)
                .arg(&ready)
                .arg(&written)
                // More than the 5 s a full buffer is allowed before the server closes the watch.
                .arg("7")
                .output()
                .unwrap()
        })
    };
    while !ready.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Far more than the watch buffer and the socket buffers hold: ~400 events of 64 KiB.
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await, "default");
    let payload = "x".repeat(64 * 1024);
    for i in 0..400 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("big-{i}")},
            "data": {"payload": payload},
        }))
        .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    // The server keeps serving others while that watcher is stalled.
    assert_eq!(
        api.get("big-399").await.unwrap().metadata.name.as_deref(),
        Some("big-399")
    );
    std::fs::write(&written, b"").unwrap();
    let out = tokio::task::spawn_blocking(move || client_run.join().unwrap())
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the client's report: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        report["ended"], true,
        "the stalled watch was closed: {report}"
    );
    let events = report["events"].as_u64().unwrap();
    assert!(
        events < 400,
        "a stalled watcher is cut off, not buffered for: {events} events delivered"
    );
}
