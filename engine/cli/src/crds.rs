//! `strata crds`: writes Strata's own CRDs (the engine's and every provider's, generated from
//! the Rust types) to a directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use strata_core::crd;

#[derive(clap::Args, Debug)]
pub struct CrdsArgs {
    /// Where to write the CRD files.
    #[arg(long, default_value = "crds")]
    out: PathBuf,
    /// Do not write; exit 1 if the directory differs from what would be written.
    #[arg(long)]
    check: bool,
}

pub fn run(args: CrdsArgs) -> Result<ExitCode> {
    let mut crds = crd::engine_crds();
    crds.extend(crd::crossplane_crds());
    crds.extend(strata_provider_aws::crds());
    crds.extend(strata_provider_gcp::crds());
    let files = crd::crd_files(&crds)?;
    if args.check {
        let mut stale = Vec::new();
        for (name, content) in &files {
            let path = args.out.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        if stale.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("out of date (run `strata crds`): {}", stale.join(", "));
        return Ok(ExitCode::from(1));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    for (name, content) in &files {
        let path = args.out.join(name);
        std::fs::write(&path, content)
            .with_context(|| format!("{}: cannot write", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
