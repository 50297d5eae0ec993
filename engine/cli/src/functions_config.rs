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
//! - name: function-go-templating     # a package pulled from an OCI registry, run locally
//!   package: registry.example/crossplane-contrib/function-go-templating:v0.10.0
//! ```
//!
//! A `command` runs as a supervised local process on a free loopback port (`{address}` is
//! `127.0.0.1:PORT`, `{port}` the port) with mTLS as Crossplane runs functions: Strata's own CA
//! ([`strata_functions::certs`]) issues its certificate into a private directory named by
//! `TLS_SERVER_CERTS_DIR`, and Strata dials it with a client certificate; `insecure: true`
//! (with the function's own `--insecure`) dials it without TLS. A `package` is pulled
//! ([`strata_functions::oci`], cached by digest under `--function-cache`) and its entrypoint run
//! the same way, with `--address {address}` (and `--insecure` when `insecure: true`) appended as
//! Crossplane's function SDKs read them; `plainHttp: true` pulls from a registry without TLS (a
//! registry on loopback). An `address` is dialled with the operator's certificates (`tls`), or
//! without TLS when `insecure: true`.

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
    /// Where function packages pulled from a registry are kept, by digest (default:
    /// `$XDG_CACHE_HOME/strata/functions` or `~/.cache/strata/functions`).
    #[arg(long = "function-cache")]
    pub function_cache: Option<PathBuf>,
}

impl FunctionFlags {
    /// Pulls and starts the configured function processes; returns the controllers' settings.
    /// `cluster` is the client of a cluster that can run Deployments (`strata run`); `None` on
    /// the embedded control plane, which has no nodes.
    pub async fn start(
        &self,
        cluster: Option<&kube::Client>,
    ) -> Result<(FunctionSettings, Vec<Supervised>)> {
        let cache = self.function_cache.clone().unwrap_or_else(default_cache);
        start(
            self.functions.as_deref(),
            self.function_timeout,
            &cache,
            cluster,
        )
        .await
    }
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("strata").join("functions")
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
    #[serde(default)]
    package: Option<String>,
    #[serde(default, rename = "plainHttp")]
    plain_http: bool,
    /// `Process` (default: pulled and run locally) or `Deployment` (`strata run` on a cluster).
    #[serde(default)]
    runtime: Option<String>,
    /// The namespace of a `Deployment` runtime (default `strata-system`).
    #[serde(default)]
    namespace: Option<String>,
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
    /// Pulled, then run as a command.
    Package {
        package: String,
        plain_http: bool,
        insecure: bool,
    },
    /// Run on the cluster as a Deployment + Service in this namespace.
    Deployment { package: String, namespace: String },
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
        if let Some(package) = e.package {
            if e.address.is_some() || e.command.is_some() || e.tls.is_some() {
                bail!("{at} ({}): give one of address, command or package", e.name);
            }
            let reach = match e.runtime.as_deref() {
                None | Some("Process") if e.namespace.is_none() => Reach::Package {
                    package,
                    plain_http: e.plain_http,
                    insecure: e.insecure,
                },
                None | Some("Process") => {
                    bail!("{at}.namespace ({}): only for runtime: Deployment", e.name)
                }
                Some("Deployment") if e.insecure || e.plain_http => bail!(
                    "{at} ({}): a Deployment always serves with mTLS and is pulled by the cluster; \
                     insecure and plainHttp do not apply",
                    e.name
                ),
                Some("Deployment") => Reach::Deployment {
                    package,
                    namespace: e.namespace.unwrap_or_else(|| "strata-system".to_owned()),
                },
                Some(other) => bail!(
                    "{at}.runtime ({}): unknown runtime {other:?}; Process or Deployment",
                    e.name
                ),
            };
            out.push((e.name, reach));
            continue;
        }
        if e.runtime.is_some() || e.namespace.is_some() {
            bail!("{at} ({}): runtime and namespace are for a package", e.name);
        }
        if e.plain_http {
            bail!("{at}.plainHttp ({}): only for a package", e.name);
        }
        let reach = match (e.address, e.command) {
            (Some(_), Some(_)) => {
                bail!("{at} ({}): give one of address, command or package", e.name)
            }
            (None, None) => bail!("{at} ({}): address, command or package is required", e.name),
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
pub async fn start(
    path: Option<&Path>,
    timeout: Duration,
    cache: &Path,
    cluster: Option<&kube::Client>,
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
            Reach::Command { argv, insecure } => {
                run_command(&name, &argv, insecure, &mut ca, &mut processes)?
            }
            Reach::Deployment { package, namespace } => {
                let Some(client) = cluster else {
                    bail!(
                        "function {name}: runtime: Deployment needs a cluster with nodes (strata \
                         run); strata up runs a package as a local process (drop runtime)"
                    );
                };
                let (address, tls) =
                    crate::function_deployments::deploy(client, &name, &package, &namespace)
                        .await?;
                tracing::info!(function = %name, %package, %address, "function runs as a Deployment");
                (address, Some(tls))
            }
            // A package is pulled and run as the command its image names.
            Reach::Package {
                package,
                plain_http,
                insecure,
            } => {
                let registry = strata_functions::oci::Registry {
                    plain_http,
                    timeout: Duration::from_secs(120),
                };
                let pulled = strata_functions::oci::pull(&package, cache, &registry)
                    .await
                    .with_context(|| format!("function {name}"))?;
                tracing::info!(function = %name, %package, digest = %pulled.digest, "function package pulled");
                let mut argv = pulled.argv;
                argv.extend(["--address".to_owned(), "{address}".to_owned()]);
                if insecure {
                    argv.push("--insecure".to_owned());
                }
                run_command(&name, &argv, insecure, &mut ca, &mut processes)?
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

/// Starts a supervised function process: mTLS with Strata's CA unless `insecure`.
fn run_command(
    name: &str,
    argv: &[String],
    insecure: bool,
    ca: &mut Option<FunctionCa>,
    processes: &mut Vec<Supervised>,
) -> Result<(String, Option<ClientTls>)> {
    if insecure {
        let p = Supervised::start(name, argv)?;
        let a = p.address.clone();
        processes.push(p);
        return Ok((a, None));
    }
    let ca = match ca {
        Some(ca) => ca,
        None => ca.insert(FunctionCa::new()?),
    };
    let dir = ca.server_dir(&std::env::temp_dir().join("strata-functions"), name)?;
    let env = vec![("TLS_SERVER_CERTS_DIR".to_owned(), dir.display().to_string())];
    let p = Supervised::start_with(name, argv, env, Some(dir))?;
    let a = p.address.clone();
    processes.push(p);
    Ok((a, Some(ca.client_tls())))
}
