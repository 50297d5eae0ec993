//! Reading inputs for the offline commands: files or directories of YAML/JSON streams.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use strata_core::load::{self, SourcedValue};

/// Every document of a file, or of every `.yaml`/`.yml`/`.json` file under a directory
/// (sorted, so output is deterministic).
pub fn read_documents(path: &Path) -> Result<Vec<SourcedValue>> {
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    let mut out = Vec::new();
    for file in files {
        let text = read_text(&file)?;
        out.extend(load::parse_stream(&text, &file.display().to_string())?);
    }
    Ok(out)
}

/// Reads a file, refusing oversized input before it is loaded into memory.
pub fn read_text(path: &Path) -> Result<String> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.len() > load::MAX_INPUT_BYTES as u64 {
        anyhow::bail!(
            "{}: input is {} bytes; the limit is {}",
            path.display(),
            meta.len(),
            load::MAX_INPUT_BYTES
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}: cannot read directory", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() {
                collect_files(&entry, out)?;
            } else if matches!(
                entry.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.push(entry);
            }
        }
        Ok(())
    } else {
        out.push(path.to_path_buf());
        Ok(())
    }
}
