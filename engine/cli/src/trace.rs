//! `strata trace KIND/NAME`: the claim → XR → composed resource tree with each object's
//! `Synced` and `Ready` state, read from a cluster.

use std::io::Write;
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
    /// Keep watching: print the tree again whenever an object in it changes (JSON as one
    /// document per line), until the object is deleted or Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
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
    if args.watch {
        return watch(&client, kind, name, &args).await;
    }
    let root = strata_controllers::trace::trace(&client, kind, name, Some(&args.namespace))
        .await
        .with_context(|| format!("tracing {}", args.object))?;
    print!("{}", render(&root, args.output, false)?);
    Ok(())
}

/// Prints every new tree until the object is gone or the user interrupts.
async fn watch(
    client: &kube::Client,
    kind: &str,
    name: &str,
    args: &TraceArgs,
) -> anyhow::Result<()> {
    let mut failed = None;
    let live =
        strata_controllers::trace::watch(client, kind, name, Some(&args.namespace), |root| {
            match render(root, args.output, true) {
                Ok(text) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                }
                Err(error) => failed = Some(error),
            }
        });
    tokio::select! {
        result = live => result.with_context(|| format!("tracing {}", args.object))?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    if let Some(error) = failed {
        return Err(error);
    }
    eprintln!("{} is gone", args.object);
    Ok(())
}

/// One tree in the chosen format; a watched tree in tree form starts with a timestamp line, and
/// watched JSON is one compact document per line.
fn render(
    root: &strata_controllers::trace::TraceNode,
    format: TraceFormat,
    watching: bool,
) -> anyhow::Result<String> {
    Ok(match (format, watching) {
        (TraceFormat::Tree, false) => strata_controllers::trace::render_tree(root),
        (TraceFormat::Tree, true) => format!(
            "--- {}\n{}",
            jiff::Timestamp::now().strftime("%H:%M:%S"),
            strata_controllers::trace::render_tree(root)
        ),
        (TraceFormat::Json, false) => format!(
            "{}\n",
            serde_json::to_string_pretty(root).context("serializing the trace")?
        ),
        (TraceFormat::Json, true) => format!(
            "{}\n",
            serde_json::to_string(root).context("serializing the trace")?
        ),
        (TraceFormat::Dot, _) => strata_controllers::trace::render_dot(root),
    })
}
