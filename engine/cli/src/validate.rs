//! `strata validate FILE...`: checks XRDs, Compositions, XRs and claims offline, reporting every
//! problem at once.
//!
//! Files are read first (directories recursively: `.yaml`, `.yml`, `.json`, sorted). A file that
//! cannot be read is bad usage (exit 2); everything after that is a finding. Then, from the parsed
//! documents alone ([`validate_documents`], no I/O):
//! - every document is classified ([`load::classify`]): malformed XRDs, Compositions and
//!   EnvironmentConfigs, unknown patch or transform types are findings with their field path;
//! - every XRD is turned into its CRDs ([`definition::definitions`]) and each version's schema compiled;
//! - every Composition is linted against the loaded XRDs ([`lint_composition`]); as a safety net a
//!   Composition with no lint errors must also compile, exactly as render compiles it;
//! - every object whose apiVersion and kind belong to a loaded XRD (its XR or its claim) is
//!   pruned, defaulted and validated against that version's generated schema, as the API server
//!   would; an object of an XRD's group but of a kind no XRD defines is a warning.
//!
//! Output, one finding per line on stdout, in file and document order, then a summary:
//! `error: FILE:LINE: Kind/name: field: message` (the line of the field in the file), `warning: ...`, and
//! `validated N documents in M files: E errors, W warnings`. A stream that does not parse is one
//! `error: FILE: message` line. Exit 0 without errors, 1 with any, 2 on bad usage or a file that
//! cannot be read.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::Value;
use strata_core::compile::CompiledComposition;
use strata_core::definition::{self, Definition, object_name};
use strata_core::lint::{Finding, Severity, lint_composition};
use strata_core::load::{self, Document, SourcedValue};
use strata_core::model::CompositeResourceDefinition;
use strata_core::position;

use crate::input;

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// Files or directories (searched recursively for .yaml, .yml and .json files).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: ValidateArgs) -> Result<ExitCode> {
    let files = collect_files(&args.files)?;
    let mut sources = Vec::with_capacity(files.len());
    for file in &files {
        sources.push((file.display().to_string(), input::read_text(file)?));
    }
    let mut report = Report::default();
    let mut documents = Vec::new();
    for (name, text) in &sources {
        match load::parse_stream(text, name) {
            Ok(docs) => documents.extend(docs),
            Err(e) => report.stream_error(name, stream_error_message(name, &e)),
        }
    }
    report.findings.extend(validate_documents(&documents));
    let texts: BTreeMap<&str, &str> = sources
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    // A pipeline Composition's findings name paths of its patch-and-transform steps folded in
    // (`spec.resources[0]`); in the file they are under those steps' inputs.
    let by_position: BTreeMap<(&str, usize), &Value> = documents
        .iter()
        .map(|d| ((d.source.as_str(), d.document), &d.value))
        .collect();
    for located in &mut report.findings {
        let Some(text) = texts.get(located.source.as_str()) else {
            continue;
        };
        let document = located
            .document
            .and_then(|d| by_position.get(&(located.source.as_str(), d)).copied());
        located.locate(text, document);
    }

    report.sort_by_position(&sources);
    let summary = report.summary(documents.len(), sources.len());
    match print(report.lines().chain(std::iter::once(summary))) {
        // A reader that stopped early (`strata validate . | head`) still gets the exit code.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the report");
        }
        _ => {}
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(lines: impl Iterator<Item = String>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// A one-line message for a stream that did not load: the YAML library's own `error:` prefix and
/// source snippet are dropped, and a document position the location adds is kept.
fn stream_error_message(source: &str, error: &load::LoadError) -> String {
    let message = error
        .message
        .strip_prefix("error: ")
        .unwrap_or(&error.message);
    let message = message
        .split_once(" --> ")
        .map_or(message, |(head, _)| head)
        .trim();
    match error
        .location
        .strip_prefix(source)
        .map(str::trim)
        .filter(|rest| !rest.is_empty())
    {
        Some(position) => format!("{position}: {message}"),
        None => message.to_owned(),
    }
}

/// The files named, with directories expanded recursively (sorted) to their YAML and JSON files.
/// A file named explicitly is read whatever its extension.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
        if meta.is_dir() {
            let before = out.len();
            collect_directory(path, &mut out)?;
            if out.len() == before {
                anyhow::bail!(
                    "{}: no .yaml, .yml or .json files in this directory",
                    path.display()
                );
            }
        } else {
            out.push(path.clone());
        }
    }
    // A file named twice (or inside two named directories) is validated once.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|path| seen.insert(path.clone()));
    Ok(out)
}

fn collect_directory(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot read directory", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot read directory", dir.display()))?;
        // `file_type` does not follow symlinks, so a link back up the tree cannot loop.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        entries.push((entry.path(), is_dir));
    }
    entries.sort();
    for (path, is_dir) in entries {
        if is_dir {
            collect_directory(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// A finding and where it is: the source and, once the stream parsed, the document (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub source: String,
    pub document: Option<usize>,
    /// The line of the field (or of the document) in the file, once looked up.
    pub line: Option<usize>,
    pub finding: Finding,
}

impl Located {
    fn at(doc: &SourcedValue, finding: Finding) -> Self {
        Self {
            source: doc.source.clone(),
            document: Some(doc.document),
            line: None,
            finding,
        }
    }

    /// The field the finding is about: its own, or the path a loading error starts with
    /// (`spec.resources[0].name: required`).
    fn field(&self) -> &str {
        if !self.finding.field.is_empty() {
            return &self.finding.field;
        }
        match self.finding.message.split_once(": ") {
            Some((head, _)) if !head.is_empty() && !head.contains(char::is_whitespace) => head,
            _ => "",
        }
    }

    /// Looks up the line of the finding's field in the source text; `document` is the parsed
    /// document, whose pipeline (if any) maps folded-in paths back to the file.
    fn locate(&mut self, text: &str, document: Option<&Value>) {
        let Some(number) = self.document else {
            return;
        };
        let field = self.field();
        let written = document.and_then(|d| load::pipeline_field(d, field));
        self.line = position::line_of(text, number, written.as_deref().unwrap_or(field));
        // A finding's own field is shown as written, too.
        if let Some(written) = written.filter(|_| !self.finding.field.is_empty()) {
            self.finding.field = written;
        }
    }
}

/// `error: FILE:LINE: Kind/name: field: message` (the line of the field, or of its document
/// when the field cannot be found), or `error: FILE: message` for a stream that did not parse.
/// Always one line: messages that span lines (a regex error with its caret) are joined with
/// spaces.
impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = self.finding.severity;
        let text = match (self.line, self.document) {
            (Some(line), _) => format!("{}:{line}: {}", self.source, self.finding),
            (None, Some(document)) => {
                format!("{} (document {document}): {}", self.source, self.finding)
            }
            (None, None) => format!("{}: {}", self.source, self.finding.message),
        };
        let one_line: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        write!(f, "{severity}: {}", one_line.join(" "))
    }
}

#[derive(Default)]
struct Report {
    findings: Vec<Located>,
}

impl Report {
    fn stream_error(&mut self, source: &str, message: String) {
        self.findings.push(Located {
            source: source.to_owned(),
            document: None,
            line: None,
            finding: Finding {
                severity: Severity::Error,
                object: String::new(),
                field: String::new(),
                message,
            },
        });
    }

    /// Files in the order read, documents in stream order; findings of one document keep the
    /// order they were found in.
    fn sort_by_position(&mut self, sources: &[(String, String)]) {
        let order: BTreeMap<&str, usize> = sources
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        self.findings
            .sort_by_key(|l| (order.get(l.source.as_str()).copied(), l.document));
    }

    fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.findings.iter().map(ToString::to_string)
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|l| l.finding.severity == severity)
            .count()
    }

    fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    fn summary(&self, documents: usize, files: usize) -> String {
        format!(
            "validated {} in {}: {}, {}",
            plural(documents, "document"),
            plural(files, "file"),
            plural(self.count(Severity::Error), "error"),
            plural(self.count(Severity::Warning), "warning"),
        )
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn finding(
    severity: Severity,
    doc: &SourcedValue,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Located {
    Located::at(
        doc,
        Finding {
            severity,
            object: object_name(&doc.value),
            field: field.into(),
            message: message.into(),
        },
    )
}

/// Every finding about already-parsed documents. Pure: no files, no output.
pub fn validate_documents(documents: &[SourcedValue]) -> Vec<Located> {
    let mut out = Vec::new();
    let mut xrds: Vec<(&SourcedValue, CompositeResourceDefinition)> = Vec::new();
    let mut compositions = Vec::new();
    let mut objects = Vec::new();
    let mut salvaged = Vec::new();
    for doc in documents {
        match load::classify(doc) {
            Ok(Document::Xrd(xrd)) => xrds.push((doc, *xrd)),
            Ok(Document::Composition(c)) => {
                // What loading ignored (an unknown field of a patch-and-transform input).
                if let Ok((_, ignored)) = load::composition_with_warnings(doc) {
                    out.extend(
                        ignored
                            .into_iter()
                            .map(|w| finding(Severity::Warning, doc, "", w.message)),
                    );
                }
                compositions.push((doc, c))
            }
            Ok(Document::EnvironmentConfig(_)) => {}
            Ok(Document::Object(_)) => objects.push(doc),
            // A Composition is read past its first structural error, so that one run reports
            // every error of it.
            Err(e) if doc.value.get("kind").and_then(Value::as_str) == Some("Composition") => {
                let rest = load::composition_salvaged(doc);
                if rest.errors.is_empty() {
                    out.push(finding(Severity::Error, doc, "", e.message));
                }
                for error in &rest.errors {
                    out.push(finding(Severity::Error, doc, "", error.message.clone()));
                }
                salvaged.push((doc, rest));
            }
            Err(e) => out.push(finding(Severity::Error, doc, "", e.message)),
        }
    }

    let mut definitions: Vec<Definition> = Vec::new();
    for (doc, xrd) in &xrds {
        definitions.extend(xrd_definitions(doc, xrd, &definitions, &mut out));
    }

    let xrd_refs: Vec<&CompositeResourceDefinition> = xrds.iter().map(|(_, x)| x).collect();
    for (doc, composition) in &compositions {
        let name = composition.metadata.name.as_deref().unwrap_or("?");
        let findings = lint_composition(name, &composition.spec, &xrd_refs);
        let clean = !findings.iter().any(Finding::is_error);
        out.extend(findings.into_iter().map(|f| Located::at(doc, f)));
        // Lint is written to find everything compile refuses; should it ever miss something,
        // validate must still not pass what render would reject.
        if !clean {
            continue;
        }
        match CompiledComposition::compile(&composition.spec) {
            Err(e) => out.push(finding(Severity::Error, doc, "spec", e.to_string())),
            Ok(compiled) => {
                for dropped in compiled.graph.dropped_edges() {
                    let at = compiled.index_of(&dropped.to).map_or_else(
                        || "spec.resources".to_owned(),
                        |i| format!("spec.resources[{i}]"),
                    );
                    out.push(finding(
                        Severity::Warning,
                        doc,
                        at,
                        format!(
                            "reads `{}` of the XR, which `{}` writes, but `{}` must come after this \
                             resource; that data-flow ordering is ignored because it would close \
                             a dependency cycle",
                            dropped.detail, dropped.from, dropped.from
                        ),
                    ));
                }
            }
        }
    }

    // What is left of a Composition with structural errors is linted too; it is not compiled,
    // as it is already in error.
    for (doc, rest) in &salvaged {
        let Some(composition) = &rest.composition else {
            continue;
        };
        let name = composition.metadata.name.as_deref().unwrap_or("?");
        out.extend(
            lint_composition(name, &composition.spec, &xrd_refs)
                .into_iter()
                .map(|mut f| {
                    f.field = rest.original_field(&f.field);
                    Located::at(doc, f)
                }),
        );
    }

    for doc in objects {
        validate_object(doc, &definitions, &mut out);
    }
    out
}

/// The XR and claim definitions of one XRD; problems with the XRD are reported on it.
fn xrd_definitions(
    doc: &SourcedValue,
    xrd: &CompositeResourceDefinition,
    known: &[Definition],
    out: &mut Vec<Located>,
) -> Vec<Definition> {
    let (generated, problems) = definition::definitions(xrd);
    for problem in problems {
        out.push(finding(
            Severity::Error,
            doc,
            problem.field,
            problem.message,
        ));
    }
    let mut definitions: Vec<Definition> = Vec::new();
    for d in generated {
        let defined_before = known
            .iter()
            .chain(&definitions)
            .find(|k| k.group == d.group && k.kind == d.kind);
        if let Some(other) = defined_before {
            out.push(finding(
                Severity::Error,
                doc,
                "spec.names",
                format!(
                    "kind {} of group {} is already defined by {}",
                    d.kind, d.group, other.xrd
                ),
            ));
            continue;
        }
        definitions.push(d);
    }
    definitions
}

/// Validates an XR or a claim against its XRD, as the API server would admit it.
fn validate_object(doc: &SourcedValue, definitions: &[Definition], out: &mut Vec<Located>) {
    let Some(definition) = definition::find(definitions, &doc.value) else {
        let api_version = doc
            .value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let same_group: Vec<&str> = definitions
            .iter()
            .filter(|d| !group.is_empty() && d.group == group)
            .map(|d| d.kind.as_str())
            .collect();
        if !same_group.is_empty() {
            out.push(finding(
                Severity::Warning,
                doc,
                "kind",
                format!("no loaded XRD defines kind {kind:?} in group {group} (defined: {}); not validated", same_group.join(", ")),
            ));
        }
        return;
    };
    let admission = definition::admit(definition, &doc.value);
    out.extend(admission.findings.into_iter().map(|f| Located::at(doc, f)));
}
