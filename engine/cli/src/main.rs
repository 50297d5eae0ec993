//! `strata`: thin glue over the engine crates. Each subcommand lives in its own module,
//! parses its arguments into a settings struct once, and calls the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A fast allocator: render and the API server allocate many small JSON nodes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod crds;
mod function_deployments;
mod functions_config;
mod graph;
mod input;
mod kubeconfig;
mod reconcilers;
mod render;
mod render_functions;
mod run;
mod trace;
mod up;
mod validate;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "A composition engine for cloud infrastructure on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render a composite resource with a Composition, offline, in-process.
    Render(render::RenderArgs),
    /// Validate XRDs, Compositions, XRs and claims.
    Validate(validate::ValidateArgs),
    /// Show the dependency graph of a Composition.
    Graph(graph::GraphArgs),
    /// Write Strata's own CRDs.
    Crds(crds::CrdsArgs),
    /// Start the embedded, Kubernetes-compatible control plane.
    Up(up::UpArgs),
    /// Write a kubeconfig for a user of the embedded control plane (a client certificate signed
    /// by its CA).
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Run the controllers against a Kubernetes cluster.
    Run(run::RunArgs),
    /// Show a claim or XR and everything it composes, with readiness.
    Trace(trace::TraceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The control plane and the controllers keep their heap in huge pages (restarting this
    // process once with the allocator's settings); short commands keep small pages.
    match cli.command {
        Command::Up(_) | Command::Run(_) => strata_controllers::process::tune_memory(),
        _ => strata_controllers::process::small_pages_only(),
    }
    strata_apiserver::tls::install_default_crypto_provider();
    let result = match cli.command {
        Command::Render(args) => render::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Crds(args) => crds::run(args),
        Command::Up(args) => run_async(up::run(args)),
        Command::Kubeconfig(args) => kubeconfig::run(args),
        Command::Run(args) => run_async(run::run(args)),
        Command::Trace(args) => run_async(trace::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_async<F: std::future::Future<Output = anyhow::Result<()>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(f)?;
    Ok(ExitCode::SUCCESS)
}
