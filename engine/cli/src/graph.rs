//! `strata graph`: the dependency graph of a Composition as text, Graphviz dot or Mermaid.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use strata_core::compile::CompiledComposition;
use strata_core::graph::{DependencyGraph, EdgeKind};
use strata_core::load;

use crate::input::read_text;
use crate::render::{Format, RenderArgs};
use crate::render_functions::{self, Executed, FunctionArgs};

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    /// The Composition (Strata or Crossplane format).
    composition: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    format: GraphFormat,
    /// For a function pipeline: the functions file; the graph is that of a render of `--xr`.
    #[arg(long, requires = "xr")]
    functions: Option<PathBuf>,
    /// For a function pipeline: the XR to render.
    #[arg(long)]
    xr: Option<PathBuf>,
    /// For a function pipeline: observed composed resources, as for `strata render`.
    #[arg(long = "observed-resources")]
    observed_resources: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

pub fn run(args: GraphArgs) -> Result<ExitCode> {
    if let Some(xr) = &args.xr {
        let render_args = RenderArgs {
            composite: xr.clone(),
            composition: args.composition.clone(),
            functions: args.functions.clone(),
            observed_resources: args.observed_resources.clone(),
            environment: None,
            xrd: None,
            output: Format::Yaml,
            include_connection_details: false,
            function_args: FunctionArgs::default(),
        };
        match render_functions::execute(&render_args) {
            Ok(Some(executed)) => return Ok(pipeline_graph(&args, executed)),
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let text = match read_text(&args.composition) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let composition =
        match load::composition_from_str(&text, &args.composition.display().to_string()) {
            Ok((c, ignored)) => {
                for warning in ignored {
                    eprintln!("warning: {warning}");
                }
                c
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        };
    if !composition.spec.pipeline.is_empty() {
        // Its resources exist only once the functions ran.
        eprintln!(
            "error: {}: a function pipeline's graph comes from a render: give --xr XR and \
             --functions FUNCTIONS",
            args.composition.display()
        );
        return Ok(ExitCode::from(2));
    }
    let compiled = match CompiledComposition::compile(&composition.spec) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", args.composition.display());
            return Ok(ExitCode::from(1));
        }
    };
    let name = composition
        .metadata
        .name
        .as_deref()
        .unwrap_or("composition");
    let out = match args.format {
        GraphFormat::Text => text_graph(name, &compiled),
        GraphFormat::Dot => dot_graph(name, &compiled.graph),
        GraphFormat::Mermaid => mermaid_graph(&compiled.graph),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn names(graph: &DependencyGraph, indexes: &[usize]) -> String {
    indexes
        .iter()
        .map(|i| graph.name(*i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plain-text report: creation order with each resource's dependencies, then the waves.
pub fn text_graph(name: &str, compiled: &CompiledComposition) -> String {
    let g = &compiled.graph;
    let t = &compiled.composite_type;
    let mut out = String::new();
    let _ = writeln!(out, "Composition {name} ({} {})", t.api_version, t.kind);
    let _ = writeln!(out, "resources in creation order:");
    for (n, i) in g.order().iter().enumerate() {
        let deps: Vec<String> = g
            .edges()
            .into_iter()
            .filter(|(_, to, _, _)| to == i)
            .map(|(from, _, kind, detail)| match kind {
                EdgeKind::DependsOn => format!("{} (dependsOn)", g.name(from)),
                _ => format!("{} ({kind}: {detail})", g.name(from)),
            })
            .collect();
        if deps.is_empty() {
            let _ = writeln!(out, "  {}. {}", n + 1, g.name(*i));
        } else {
            let _ = writeln!(out, "  {}. {} <- {}", n + 1, g.name(*i), deps.join(", "));
        }
    }
    let _ = writeln!(out, "creation waves:");
    for (n, wave) in g.creation_waves().iter().enumerate() {
        let _ = writeln!(out, "  {}: {}", n + 1, names(g, wave));
    }
    let _ = writeln!(out, "deletion waves:");
    for (n, wave) in g.deletion_waves().iter().enumerate() {
        let _ = writeln!(out, "  {}: {}", n + 1, names(g, wave));
    }
    if !g.dropped_edges().is_empty() {
        let _ = writeln!(
            out,
            "inferred edges ignored because they would form a cycle:"
        );
        for d in g.dropped_edges() {
            let _ = writeln!(out, "  {} -> {} ({})", d.from, d.to, d.detail);
        }
    }
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz: solid edges gate creation, dashed ones are inferred data flow.
pub fn dot_graph(name: &str, g: &DependencyGraph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(name));
    let _ = writeln!(out, "  rankdir=LR;");
    for i in g.order() {
        let _ = writeln!(out, "  {};", quote(g.name(*i)));
    }
    for (from, to, kind, detail) in g.edges() {
        let style = if kind.gates_creation() {
            "solid"
        } else {
            "dashed"
        };
        let label = if detail.is_empty() || kind == EdgeKind::DependsOn {
            kind.to_string()
        } else {
            format!("{kind}: {detail}")
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, style={style}];",
            quote(g.name(from)),
            quote(g.name(to)),
            quote(&label)
        );
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart: `-->` gates creation, `-.->` is inferred.
pub fn mermaid_graph(g: &DependencyGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    let id = |i: usize| format!("r{i}");
    for i in g.order() {
        let _ = writeln!(out, "  {}[\"{}\"]", id(*i), g.name(*i).replace('"', "'"));
    }
    for (from, to, kind, _) in g.edges() {
        let arrow = if kind.gates_creation() { "-->" } else { "-.->" };
        let _ = writeln!(out, "  {} {arrow}|{kind}| {}", id(from), id(to));
    }
    out
}

/// The graph of a function pipeline, from a render: the resources the functions produced, the
/// ordering edges (function-sequencer rules, `strata.dev/depends-on`), waves both ways and what
/// the render withheld.
fn pipeline_graph(args: &GraphArgs, executed: Executed) -> ExitCode {
    let run = match executed.outcome {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let f = &run.finished;
    let index: std::collections::BTreeMap<&str, usize> = f
        .order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    // Creation waves: a resource's wave is one past its latest predecessor's.
    let mut wave = vec![0usize; f.order.len()];
    for (i, name) in f.order.iter().enumerate() {
        for (before, after) in &f.edges {
            if after == name
                && let Some(&b) = index.get(before.as_str())
            {
                wave[i] = wave[i].max(wave[b] + 1);
            }
        }
    }
    let waves = wave.iter().max().map_or(0, |m| m + 1);
    let members = |w: usize| -> String {
        f.order
            .iter()
            .zip(&wave)
            .filter(|(_, x)| **x == w)
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    let title = args.composition.display().to_string();
    match args.format {
        GraphFormat::Text => {
            let _ = writeln!(out, "Composition {title} (function pipeline, as rendered)");
            let _ = writeln!(out, "resources in creation order:");
            for (n, name) in f.order.iter().enumerate() {
                let deps: Vec<&str> = f
                    .edges
                    .iter()
                    .filter(|(_, a)| a == name)
                    .map(|(b, _)| b.as_str())
                    .collect();
                if deps.is_empty() {
                    let _ = writeln!(out, "  {}. {name}", n + 1);
                } else {
                    let _ = writeln!(out, "  {}. {name} <- {}", n + 1, deps.join(", "));
                }
            }
            let _ = writeln!(out, "creation waves:");
            for w in 0..waves {
                let _ = writeln!(out, "  {}: {}", w + 1, members(w));
            }
            let _ = writeln!(out, "deletion waves:");
            for (n, w) in (0..waves).rev().enumerate() {
                let _ = writeln!(out, "  {}: {}", n + 1, members(w));
            }
            if !f.withheld.is_empty() {
                let _ = writeln!(out, "withheld by this render:");
                for w in &f.withheld {
                    let _ = writeln!(out, "  {} waits for {}", w.name, w.waiting_for.join(", "));
                }
            }
        }
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph {} {{", quote(&title));
            let _ = writeln!(out, "  rankdir=LR;");
            for name in &f.order {
                let _ = writeln!(out, "  {};", quote(name));
            }
            for (b, a) in &f.edges {
                let _ = writeln!(
                    out,
                    "  {} -> {} [label=\"orders\", style=solid];",
                    quote(b),
                    quote(a)
                );
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, name) in f.order.iter().enumerate() {
                let _ = writeln!(out, "  r{i}[\"{}\"]", name.replace('"', "'"));
            }
            for (b, a) in &f.edges {
                if let (Some(bi), Some(ai)) = (index.get(b.as_str()), index.get(a.as_str())) {
                    let _ = writeln!(out, "  r{bi} -->|orders| r{ai}");
                }
            }
        }
    }
    print!("{out}");
    ExitCode::SUCCESS
}
