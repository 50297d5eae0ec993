//! Golden tests of `strata render`: every directory under `tests/golden/` is one case.
//!
//! A case holds `xr.yaml` and `composition.yaml`, optionally `observed.yaml`, `environment.yaml`,
//! `xrd.yaml` and `args` (extra arguments, one per line), and the expectation: `expected.yaml`
//! (stdout of a successful render), `expected.stderr` (warnings or the error message, compared
//! exactly when present) and `expected.code` (the exit code, 0 when absent).
//!
//! `STRATA_BLESS=1 cargo test --test it golden` rewrites the expectations from the current
//! output — review the diff: an expectation is a claim about Crossplane's behaviour.

use std::path::Path;

use crate::support::{repo_root, strata};

fn run_case(dir: &Path) -> Result<(), String> {
    let mut args: Vec<String> = vec!["render".into(), "xr.yaml".into(), "composition.yaml".into()];
    for (file, flag) in [
        ("observed.yaml", "--observed-resources"),
        ("environment.yaml", "--environment"),
        ("xrd.yaml", "--xrd"),
    ] {
        if dir.join(file).exists() {
            args.push(flag.into());
            args.push(file.into());
        }
    }
    if let Ok(extra) = std::fs::read_to_string(dir.join("args")) {
        args.extend(
            extra
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.trim().to_owned()),
        );
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = strata(&argv, dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if std::env::var_os("STRATA_BLESS").is_some() {
        let write = |name: &str, content: &str| {
            std::fs::write(dir.join(name), content).expect("bless writes")
        };
        if code == 0 {
            write("expected.yaml", &stdout)
        } else {
            let _ = std::fs::remove_file(dir.join("expected.yaml"));
        }
        if stderr.is_empty() {
            let _ = std::fs::remove_file(dir.join("expected.stderr"));
        } else {
            write("expected.stderr", &stderr)
        }
        if code == 0 {
            let _ = std::fs::remove_file(dir.join("expected.code"));
        } else {
            write("expected.code", &format!("{code}\n"))
        }
        return Ok(());
    }
    let want_code: i32 = std::fs::read_to_string(dir.join("expected.code"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let mut problems = Vec::new();
    if code != want_code {
        problems.push(format!(
            "exit code {code}, want {want_code}; stderr:\n{stderr}"
        ));
    }
    if let Ok(want) = std::fs::read_to_string(dir.join("expected.yaml")) {
        if stdout != want {
            problems.push(format!(
                "stdout differs:\n--- want\n{want}\n--- got\n{stdout}"
            ));
        }
    } else if want_code == 0 {
        problems.push("expected.yaml is missing".into());
    }
    match std::fs::read_to_string(dir.join("expected.stderr")) {
        Ok(want) if stderr != want => problems.push(format!(
            "stderr differs:\n--- want\n{want}\n--- got\n{stderr}"
        )),
        Err(_) if !stderr.is_empty() => problems.push(format!("unexpected stderr:\n{stderr}")),
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn every_golden_case_renders_as_expected() {
    let root = repo_root().join("tests/golden");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases found");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|dir| {
            run_case(dir)
                .err()
                .map(|e| format!("== {}\n{e}", dir.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
