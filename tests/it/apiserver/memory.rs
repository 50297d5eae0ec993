//! `strata up` restarts itself once, in place, with the allocator's settings for a long-running
//! process (freed memory kept, huge pages allowed), unless the operator set mimalloc's options;
//! `strata_controllers::process` says why.

use std::process::Stdio;
use std::time::Duration;

use strata_test_support::eventually;

use super::fixture::{Killed, temp_dir};
use crate::support::strata_up;

/// The environment and the transparent-huge-page switch of the process with `pid`.
fn environment_and_thp(pid: u32) -> (Vec<String>, String) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut environment: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|v| v.starts_with("MIMALLOC_"))
        .collect();
    environment.sort();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    (environment, thp)
}

/// Starts `strata up` (API only) with `env` added to an environment without mimalloc's options,
/// waits for its kubeconfig, and reads what its process (the PID spawned) runs with.
fn started_with(name: &str, env: &[(&str, &str)]) -> (Vec<String>, String) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = strata_up(&dir);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("MIMALLOC_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let server = Killed(command.spawn().unwrap());
    let kubeconfig = dir.join("kubeconfig");
    eventually(
        "strata up to write its kubeconfig",
        Duration::from_secs(30),
        || kubeconfig.exists().then_some(()),
    );
    // The process serving is the one spawned: the restart replaced its program, not its id.
    environment_and_thp(server.0.id())
}

#[test]
fn strata_up_runs_with_freed_memory_kept_and_huge_pages_allowed() {
    let (environment, thp) = started_with("memory-default", &[]);
    assert_eq!(
        environment,
        ["MIMALLOC_ALLOW_LARGE_OS_PAGES=1", "MIMALLOC_PURGE_DELAY=-1"],
        "the restarted process has the allocator's settings"
    );
    assert_eq!(thp, "1", "transparent huge pages stay allowed");
}

#[test]
fn strata_up_keeps_the_operators_allocator_settings() {
    // Purging on (mimalloc's default delay): every purged range would come back as a zeroed
    // huge page, so the process keeps small pages, as before.
    let (environment, thp) = started_with("memory-operator", &[("MIMALLOC_PURGE_DELAY", "1000")]);
    assert_eq!(environment, ["MIMALLOC_PURGE_DELAY=1000"], "nothing added");
    assert_eq!(thp, "0", "transparent huge pages off for the process");
}
