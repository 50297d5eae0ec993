//! Functions Strata runs itself as local processes, from the operator's start-up
//! configuration (never from an API object: no API write can make Strata run a command).
//!
//! Each function gets a free port on 127.0.0.1, substituted into its command line (`{address}`
//! is `127.0.0.1:PORT`, `{port}` the port alone). A supervisor thread per function starts it,
//! reports it ready once its port accepts connections, restarts it when it exits (with a
//! backoff doubling up to 30 s, reset after a minute of running), and stops it — by its own
//! child handle, never by name — when [`Supervised`] is dropped or stopped. On Linux the
//! process is started through util-linux's `setpriv --pdeathsig KILL`, so it also dies when
//! Strata is killed outright. Its output lines are logged at debug level under the function's
//! name.
//!
//! Written on `std::process` with one thread per function rather than an async process
//! manager: a handful of long-lived children need no reactor, and it keeps the async runtime's
//! feature set (and build) unchanged.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a started function may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

/// Why a function process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The configured command line has no program.
    #[error("function {name}: the command is empty")]
    EmptyCommand {
        /// The function's name.
        name: String,
    },
    /// No port on 127.0.0.1 could be reserved for the function.
    #[error("function {name}: no free loopback port: {source}")]
    Port {
        /// The function's name.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The program could not be started (not found, not executable).
    #[error("function {name}: starting {program:?}: {source}")]
    Spawn {
        /// The function's name.
        name: String,
        /// The program as configured.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process exited before its port accepted a connection.
    #[error("function {name}: exited before listening on {address} ({status})")]
    Exited {
        /// The function's name.
        name: String,
        /// `127.0.0.1:PORT`, where it should have listened.
        address: String,
        /// Its exit status.
        status: String,
    },
    /// The process did not listen within [`START_TIMEOUT`].
    #[error("function {name}: not listening on {address} after {}s", START_TIMEOUT.as_secs())]
    NotListening {
        /// The function's name.
        name: String,
        /// `127.0.0.1:PORT`, where it should listen.
        address: String,
    },
}

/// A function process under supervision.
pub struct Supervised {
    /// The function's name (its `Function` object's, as configured).
    pub name: String,
    /// `127.0.0.1:PORT`, where the function serves.
    pub address: String,
    stop: Arc<AtomicBool>,
    /// The current child's PID (0 between runs), for tests and logs.
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
    owned_dir: Option<PathBuf>,
}

fn remove(dir: Option<&std::path::Path>) {
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

impl Supervised {
    /// Starts `command` (program and arguments, `{address}`/`{port}` substituted) and waits
    /// until it listens.
    pub fn start(name: &str, command: &[String]) -> Result<Self, ProcessError> {
        Self::start_with(name, command, Vec::new(), None)
    }

    /// As [`Supervised::start`], with environment variables for the process and a directory
    /// that belongs to it (its certificates), removed when it stops.
    pub fn start_with(
        name: &str,
        command: &[String],
        env: Vec<(String, String)>,
        owned_dir: Option<PathBuf>,
    ) -> Result<Self, ProcessError> {
        if command.is_empty() {
            return Err(ProcessError::EmptyCommand {
                name: name.to_owned(),
            });
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|source| ProcessError::Port {
                name: name.to_owned(),
                source,
            })?
            .port();
        let address = format!("127.0.0.1:{port}");
        let argv: Vec<String> = command
            .iter()
            .map(|a| {
                a.replace("{address}", &address)
                    .replace("{port}", &port.to_string())
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicU32::new(0));
        let restarts = Arc::new(AtomicU32::new(0));
        // The supervisor thread starts the process itself: a process that asks to die with its
        // parent dies with the thread that started it, which lives as long as the supervision.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread = {
            let (owned, address, stop, pid, restarts) = (
                name.to_owned(),
                address.clone(),
                stop.clone(),
                pid.clone(),
                restarts.clone(),
            );
            std::thread::Builder::new()
                .name(format!("fn-{name}"))
                .spawn(move || {
                    let child = match spawn(&owned, &argv, &env).and_then(|mut child| {
                        wait_listening(&owned, &address, &mut child)?;
                        Ok(child)
                    }) {
                        Ok(child) => {
                            pid.store(child.id(), Ordering::SeqCst);
                            let _ = started_tx.send(Ok(()));
                            child
                        }
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    supervise(&owned, &argv, &env, child, &stop, &pid, &restarts);
                })
                .map_err(|source| ProcessError::Spawn {
                    name: name.to_owned(),
                    program: "supervisor thread".to_owned(),
                    source,
                })?
        };
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                remove(owned_dir.as_deref());
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                remove(owned_dir.as_deref());
                return Err(ProcessError::NotListening {
                    name: name.to_owned(),
                    address,
                });
            }
        }
        tracing::info!(function = name, %address, "function process started");
        Ok(Self {
            name: name.to_owned(),
            address,
            stop,
            pid,
            restarts,
            thread: Some(thread),
            owned_dir,
        })
    }

    /// The running process's PID, `None` between a crash and its restart.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|p| *p != 0)
    }

    /// How many times the process was restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Stops the process and waits for the supervisor.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        remove(self.owned_dir.take().as_deref());
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Where util-linux's `setpriv` is: it makes the process die with the thread that started it
/// (`--pdeathsig KILL`), so a function never outlives a Strata that was killed outright.
const SETPRIV: &str = "/usr/bin/setpriv";

fn spawn(name: &str, argv: &[String], env: &[(String, String)]) -> Result<Child, ProcessError> {
    let program = find_program(&argv[0]).ok_or_else(|| ProcessError::Spawn {
        name: name.to_owned(),
        program: argv[0].clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such program"),
    })?;
    let mut command = if std::path::Path::new(SETPRIV).exists() {
        let mut c = Command::new(SETPRIV);
        c.args(["--pdeathsig", "KILL", "--"])
            .arg(&program)
            .args(&argv[1..]);
        c
    } else {
        let mut c = Command::new(&program);
        c.args(&argv[1..]);
        c
    };
    let mut child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            name: name.to_owned(),
            program: argv[0].clone(),
            source,
        })?;
    for out in [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let name = name.to_owned();
        // Ends when the process closes its output.
        let _ = std::thread::Builder::new()
            .name(format!("fn-{name}-log"))
            .spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    tracing::debug!(function = %name, "{line}");
                }
            });
    }
    Ok(child)
}

/// The program's path: as given when it names a path, else the first match on `PATH`.
fn find_program(program: &str) -> Option<std::path::PathBuf> {
    let is_file = |p: &std::path::Path| p.is_file();
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return is_file(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| is_file(p))
}

fn wait_listening(name: &str, address: &str, child: &mut Child) -> Result<(), ProcessError> {
    let addr: SocketAddr = address.parse().map_err(|_| ProcessError::NotListening {
        name: name.to_owned(),
        address: address.to_owned(),
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, POLL).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProcessError::Exited {
                name: name.to_owned(),
                address: address.to_owned(),
                status: status.to_string(),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProcessError::NotListening {
                name: name.to_owned(),
                address: address.to_owned(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Watches the child; restarts it when it exits, until told to stop.
fn supervise(
    name: &str,
    argv: &[String],
    env: &[(String, String)],
    mut child: Child,
    stop: &AtomicBool,
    pid: &AtomicU32,
    restarts: &AtomicU32,
) {
    let mut backoff = Duration::from_secs(1);
    let mut started = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            pid.store(0, Ordering::SeqCst);
            return;
        }
        match child.try_wait() {
            Ok(None) => {
                std::thread::sleep(POLL);
                continue;
            }
            Ok(Some(status)) => {
                tracing::warn!(function = name, %status, "function process exited; restarting");
            }
            Err(e) => {
                tracing::warn!(function = name, error = %e, "cannot watch the function process; restarting");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        pid.store(0, Ordering::SeqCst);
        if started.elapsed() > STABLE {
            backoff = Duration::from_secs(1);
        }
        // Sleep in slices so a stop is not held up by the backoff.
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(POLL);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        loop {
            match spawn(name, argv, env) {
                Ok(c) => {
                    child = c;
                    break;
                }
                Err(e) => {
                    tracing::warn!(function = name, error = %e, "cannot restart the function process");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
        started = Instant::now();
        pid.store(child.id(), Ordering::SeqCst);
        restarts.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }

    /// A listener on the given port, as a shell-free Python one-liner.
    fn listener() -> Vec<String> {
        [
            "python3",
            "-c",
            "import socket,sys,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',int(sys.argv[1])))\ns.listen()\nwhile True: s.accept()[0].close()",
            "{port}",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn a_function_process_is_restarted_after_it_dies_and_stopped_with_its_supervisor() {
        let f = Supervised::start("listener", &listener()).unwrap();
        let first = f.pid().unwrap();
        assert!(TcpStream::connect(&f.address).is_ok());
        // Kill it as a crash would.
        Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while f.restarts() == 0 || TcpStream::connect(&f.address).is_err() {
            assert!(Instant::now() < deadline, "not restarted");
            std::thread::sleep(POLL);
        }
        let second = f.pid().unwrap();
        assert_ne!(first, second);
        f.stop();
        assert!(!alive(second), "the process outlived its supervisor");
    }

    #[test]
    fn a_function_that_exits_at_once_is_an_error_naming_it() {
        let e = Supervised::start("broken", &["false".to_owned()])
            .err()
            .unwrap();
        assert!(
            matches!(e, ProcessError::Exited { ref name, .. } if name == "broken"),
            "{e}"
        );
        let e = Supervised::start("missing", &["/nonexistent/fn".to_owned()])
            .err()
            .unwrap();
        assert!(
            e.to_string().starts_with("function missing: starting"),
            "{e}"
        );
    }
}
