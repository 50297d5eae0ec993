//! `--functions FILE` of `strata up` and `strata run`: where the composition functions of
//! pipeline Compositions are reached. Operator configuration, read once at start: an API object
//! (a `pkg.crossplane.io` Function, a Composition) can name a function but never make Strata
//! dial an address or start a command.
//!
//! ```yaml
//! functions:
//! - name: function-pythonic          # a step's functionRef.name
//!   command: [function-pythonic, --address, "{address}"]
//! - name: function-kcl
//!   address: function-kcl.crossplane-system:9443   # a function the operator runs
//!   tls: {caFile: ca.crt, certFile: tls.crt, keyFile: tls.key, serverName: function-kcl}
//! - name: function-dev
//!   address: 127.0.0.1:9443
//!   insecure: true                   # plaintext gRPC: only with this set
//! ```
//!
//! A `command` runs as a supervised local process on a free loopback port (`{address}` is
//! `127.0.0.1:PORT`, `{port}` the port) with mTLS as Crossplane runs functions: Strata's own CA
//! ([`strata_functions::certs`]) issues its certificate into a private directory named by
//! `TLS_SERVER_CERTS_DIR`, and Strata dials it with a client certificate; `insecure: true`
//! (with the function's own `--insecure`) dials it without TLS. An `address` is dialled with
//! the operator's certificates (`tls`), or without TLS when `insecure: true`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use strata_controllers::functions::FunctionSettings;
use strata_functions::certs::FunctionCa;
use strata_functions::process::Supervised;
use strata_functions::transport::{ClientTls, FunctionEndpoint, ProtocolVersion};

/// The flags `strata up` and `strata run` share for functions.
#[derive(clap::Args, Debug, Clone)]
pub struct FunctionFlags {
    /// Where pipeline Compositions' functions run: a YAML file of `functions:` entries, each a
    /// `name` with an `address` (and `tls` or `insecure: true`) or a `command` Strata starts
    /// and supervises on a free loopback port (`{address}` in it is replaced), with mTLS.
    #[arg(long = "functions")]
    pub functions: Option<PathBuf>,
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
    #[serde(default)]
    tls: Option<TlsFiles>,
}

/// The operator's certificates for a function at an address: PEM files.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TlsFiles {
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
    server_name: String,
}

/// How a configured function is reached.
#[derive(Debug, PartialEq)]
enum Reach {
    /// With the operator's certificates, or plaintext (`None`, `insecure: true`).
    Address(String, Option<TlsFiles>),
    /// mTLS with Strata's certificates unless `insecure`.
    Command { argv: Vec<String>, insecure: bool },
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
            (Some(a), None) => match (e.tls, e.insecure) {
                (Some(_), true) => bail!("{at} ({}): give tls or insecure, not both", e.name),
                (None, false) => bail!(
                    "{at}.tls ({}): a function at an address needs the certificates to reach it \
                     (tls) or insecure: true to dial it without TLS",
                    e.name
                ),
                (tls, _) => Reach::Address(a, tls),
            },
            (None, Some(_)) if e.tls.is_some() => bail!(
                "{at}.tls ({}): a command's certificates are Strata's own; tls is for an address",
                e.name
            ),
            (None, Some(c)) if c.is_empty() || c[0].is_empty() => {
                bail!("{at}.command ({}): a program is required", e.name)
            }
            (None, Some(argv)) => Reach::Command {
                argv,
                insecure: e.insecure,
            },
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
    let mut ca: Option<FunctionCa> = None;
    for (name, reach) in path.map(read).transpose()?.unwrap_or_default() {
        let (address, tls) = match reach {
            Reach::Address(a, None) => (a, None),
            Reach::Address(a, Some(files)) => {
                let read = |p: &Path| {
                    std::fs::read(p)
                        .with_context(|| format!("function {name}: reading {}", p.display()))
                };
                let tls = ClientTls {
                    ca: read(&files.ca_file)?,
                    cert: read(&files.cert_file)?,
                    key: read(&files.key_file)?,
                    server_name: files.server_name,
                };
                (a, Some(tls))
            }
            Reach::Command {
                argv,
                insecure: true,
            } => {
                let p = Supervised::start(&name, &argv)?;
                let a = p.address.clone();
                processes.push(p);
                (a, None)
            }
            Reach::Command {
                argv,
                insecure: false,
            } => {
                let ca = match &mut ca {
                    Some(ca) => ca,
                    None => ca.insert(FunctionCa::new()?),
                };
                let dir = ca.server_dir(&std::env::temp_dir().join("strata-functions"), &name)?;
                let env = vec![("TLS_SERVER_CERTS_DIR".to_owned(), dir.display().to_string())];
                let p = Supervised::start_with(&name, &argv, env, Some(dir))?;
                let a = p.address.clone();
                processes.push(p);
                (a, Some(ca.client_tls()))
            }
        };
        endpoints.insert(
            name,
            FunctionEndpoint {
                address,
                tls,
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
        let dir = std::env::temp_dir().join(format!(
            "strata-fns-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("functions.yaml");
        std::fs::write(&path, text).unwrap();
        let r = read(&path);
        let _ = std::fs::remove_dir_all(&dir);
        r
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
                    Reach::Command {
                        argv: vec!["fn".into(), "{address}".into()],
                        insecure: false
                    }
                ),
                ("b".into(), Reach::Address("127.0.0.1:9443".into(), None)),
            ]
        );
        for (text, message) in [
            (
                "functions:\n- {name: b, address: 'x:1'}\n",
                "functions[0].tls (b)",
            ),
            (
                "functions:\n- {name: b, command: [x], tls: {caFile: a, certFile: b, keyFile: c, serverName: d}}\n",
                "a command's certificates are Strata's own",
            ),
            (
                "functions:\n- {name: b, address: 'x:1', insecure: true, tls: {caFile: a, certFile: b, keyFile: c, serverName: d}}\n",
                "give tls or insecure, not both",
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
