//! `--functions FILE` of `strata up` and `strata run`: where the composition functions of
//! pipeline Compositions are reached. Operator configuration, read once at start: an API object
//! (a `pkg.crossplane.io` Function, a Composition) can name a function but never make Strata
//! dial an address or start a command.
//!
//! ```yaml
//! functions:
//! - name: function-pythonic          # a step's functionRef.name
//!   command: [function-pythonic, --insecure, --address, "{address}"]
//! - name: function-kcl
//!   address: 127.0.0.1:9443          # a function the operator runs
//!   insecure: true                   # plaintext gRPC: only with this set
//! ```
//!
//! A `command` runs as a supervised local process on a free loopback port (`{address}` is
//! `127.0.0.1:PORT`, `{port}` the port); an `address` is dialled as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use strata_controllers::functions::FunctionSettings;
use strata_functions::process::Supervised;
use strata_functions::transport::{FunctionEndpoint, ProtocolVersion};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    functions: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    command: Option<Vec<String>>,
}

/// The flags `strata up` and `strata run` share for functions.
#[derive(clap::Args, Debug, Clone)]
pub struct FunctionFlags {
    /// Where pipeline Compositions' functions run: a YAML file of `functions:` entries, each a
    /// `name` with an `address` (and `insecure: true`) or a `command` Strata starts and
    /// supervises on a free loopback port (`{address}` in it is replaced).
    #[arg(long = "functions")]
    pub functions: Option<std::path::PathBuf>,
    /// How long one function call may take: `30s`, `2m`.
    #[arg(long = "function-timeout", default_value = "30s", value_parser = crate::render_functions::parse_duration)]
    pub function_timeout: Duration,
}

impl FunctionFlags {
    /// Starts the configured function processes; returns the controllers' settings.
    pub fn start(&self) -> Result<(FunctionSettings, Vec<Supervised>)> {
        start(self.functions.as_deref(), self.function_timeout)
    }
}

/// How a configured function is reached.
#[derive(Debug, PartialEq)]
enum Reach {
    Address(String),
    Command(Vec<String>),
}

/// Reads and checks the file; every error names the file and the entry.
fn read(path: &Path) -> Result<Vec<(String, Reach)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the functions file {}", path.display()))?;
    let file: File = serde_saphyr::from_str(&text)
        .with_context(|| format!("{}: not a functions file", path.display()))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, e) in file.functions.into_iter().enumerate() {
        let at = format!("{}: functions[{i}]", path.display());
        if e.name.is_empty() {
            bail!("{at}.name: required");
        }
        if !seen.insert(e.name.clone()) {
            bail!("{at}.name: function {:?} is configured twice", e.name);
        }
        let reach = match (e.address, e.command) {
            (Some(_), Some(_)) => bail!("{at} ({}): give address or command, not both", e.name),
            (None, None) => bail!("{at} ({}): address or command is required", e.name),
            (Some(a), None) => {
                if !e.insecure {
                    bail!(
                        "{at}.insecure ({}): a function at an address is dialled without TLS; \
                         say insecure: true to allow it",
                        e.name
                    );
                }
                Reach::Address(a)
            }
            (None, Some(c)) if c.is_empty() || c[0].is_empty() => {
                bail!("{at}.command ({}): a program is required", e.name)
            }
            (None, Some(c)) => Reach::Command(c),
        };
        out.push((e.name, reach));
    }
    Ok(out)
}

/// The controllers' function settings and the processes started for them (stopped on drop).
pub fn start(
    path: Option<&Path>,
    timeout: Duration,
) -> Result<(FunctionSettings, Vec<Supervised>)> {
    let mut endpoints = BTreeMap::new();
    let mut processes = Vec::new();
    for (name, reach) in path.map(read).transpose()?.unwrap_or_default() {
        let address = match reach {
            Reach::Address(a) => a,
            Reach::Command(argv) => {
                let p = Supervised::start(&name, &argv)?;
                let a = p.address.clone();
                processes.push(p);
                a
            }
        };
        endpoints.insert(
            name,
            FunctionEndpoint {
                address,
                tls: None,
                protocol: ProtocolVersion::V1,
            },
        );
    }
    Ok((FunctionSettings { endpoints, timeout }, processes))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(String, Reach)>> {
        let dir = std::env::temp_dir().join(format!("strata-fns-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("functions.yaml");
        std::fs::write(&path, text).unwrap();
        let r = read(&path);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn rand_suffix() -> String {
        format!(
            "{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
    }

    #[test]
    fn a_functions_file_names_each_function_once_with_one_way_to_reach_it() {
        let ok = parse(
            "functions:\n- {name: a, command: [fn, '{address}']}\n- {name: b, address: '127.0.0.1:9443', insecure: true}\n",
        )
        .unwrap();
        assert_eq!(
            ok,
            vec![
                (
                    "a".into(),
                    Reach::Command(vec!["fn".into(), "{address}".into()])
                ),
                ("b".into(), Reach::Address("127.0.0.1:9443".into())),
            ]
        );
        for (text, message) in [
            (
                "functions:\n- {name: b, address: 'x:1'}\n",
                "functions[0].insecure (b)",
            ),
            (
                "functions:\n- {name: b}\n",
                "functions[0] (b): address or command is required",
            ),
            (
                "functions:\n- {name: b, address: 'x:1', insecure: true, command: [x]}\n",
                "not both",
            ),
            (
                "functions:\n- {name: b, command: []}\n",
                "functions[0].command (b)",
            ),
            (
                "functions:\n- {name: b, command: [x]}\n- {name: b, command: [y]}\n",
                "functions[1].name: function \"b\" is configured twice",
            ),
            (
                "functions:\n- {name: b, comand: [x]}\n",
                "not a functions file",
            ),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(message), "{text}: {e}");
        }
    }
}
