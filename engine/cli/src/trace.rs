//! `strata trace KIND/NAME`: the claim → XR → composed resource tree with each object's
//! `Synced` and `Ready` state, read from a cluster.

use std::path::PathBuf;

use anyhow::Context;

/// Output formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceFormat {
    #[default]
    Tree,
    Json,
    Dot,
}

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// The object to trace as KIND/NAME (kind, plural, or kind.group; any case).
    pub object: String,
    /// Namespace of a namespaced object (claims, namespaced XRs).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TraceFormat::Tree)]
    pub output: TraceFormat,
    /// Kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in-cluster configuration).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<()> {
    let Some((kind, name)) = args.object.split_once('/') else {
        anyhow::bail!("expected KIND/NAME, got {:?}", args.object);
    };
    let client = strata_controllers::client(args.kubeconfig.as_deref())
        .await
        .context("connecting to the Kubernetes API")?;
    let root = strata_controllers::trace::trace(&client, kind, name, Some(&args.namespace))
        .await
        .with_context(|| format!("tracing {}", args.object))?;
    let text = match args.output {
        TraceFormat::Tree => strata_controllers::trace::render_tree(&root),
        TraceFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&root).context("serializing the trace")?
        ),
        TraceFormat::Dot => strata_controllers::trace::render_dot(&root),
    };
    print!("{text}");
    Ok(())
}
