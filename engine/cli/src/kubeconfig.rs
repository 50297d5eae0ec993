//! `strata kubeconfig`: a kubeconfig for one user of the embedded control plane, carrying a
//! client certificate signed by the data dir's CA (CN = the user, one O per group), as
//! kube-apiserver authenticates client certificates.
//!
//! It reads only the CA files of the data dir, so it works while `strata up` runs. A client
//! certificate cannot be revoked before it expires (as in Kubernetes): keep `--days` short for
//! people who may leave, or use the token file, which a restart re-reads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct KubeconfigArgs {
    /// The user name (the certificate's common name).
    #[arg(long)]
    pub user: String,
    /// A group of the user (an organization of the certificate); repeat for several.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Where to write the kubeconfig (owner-only).
    #[arg(long)]
    pub out: PathBuf,
    /// The data dir of the control plane whose CA signs the certificate.
    #[arg(long, default_value = ".strata")]
    pub data_dir: PathBuf,
    /// The API server's URL (default: the server of <data-dir>/kubeconfig).
    #[arg(long)]
    pub server: Option<String>,
    /// How many days the certificate is valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
}

pub fn run(args: KubeconfigArgs) -> anyhow::Result<ExitCode> {
    if args.user.trim().is_empty() {
        anyhow::bail!("--user: the user name is empty");
    }
    if let Some(empty) = args.groups.iter().position(|g| g.trim().is_empty()) {
        anyhow::bail!("--group {}: the group name is empty", empty + 1);
    }
    let ca = strata_apiserver::tls::read_ca(&args.data_dir)?.with_context(|| {
        format!(
            "{} has no CA ({}, {}): start `strata up --data-dir {}` once first",
            args.data_dir.display(),
            strata_apiserver::tls::CA_CERT_FILE,
            strata_apiserver::tls::CA_KEY_FILE,
            args.data_dir.display()
        )
    })?;
    let server = match &args.server {
        Some(s) => s.clone(),
        None => server_of_admin_kubeconfig(&args.data_dir)?,
    };
    let issued = strata_apiserver::client_cert::issue(
        &ca.cert_pem,
        &ca.key_pem,
        &args.user,
        &args.groups,
        Duration::from_secs(u64::from(args.days) * 24 * 3600),
    )?;
    strata_apiserver::auth::write_kubeconfig(
        &args.out,
        &server,
        &ca.cert_pem,
        &args.user,
        &strata_apiserver::auth::Credentials::ClientCertificate {
            certificate_pem: &issued.certificate_pem,
            key_pem: &issued.private_key_pem,
        },
    )
    .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "kubeconfig for user {} (groups: {}) written to {}",
        args.user,
        if args.groups.is_empty() {
            "none".to_owned()
        } else {
            args.groups.join(", ")
        },
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The server URL of the admin kubeconfig `strata up` wrote in the data dir.
fn server_of_admin_kubeconfig(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("kubeconfig");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} for the server URL (or pass --server)",
            path.display()
        )
    })?;
    let config: serde_json::Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
    config
        .pointer("/clusters/0/cluster/server")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "{} names no server (clusters[0].cluster.server); pass --server",
                path.display()
            )
        })
}
