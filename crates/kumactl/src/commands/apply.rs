//! `kumactl apply`: read, render, validate every document locally, and only
//! then write them one by one.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use chrono::DateTime;
use kuma_api::{ApiError, ResourceDocument, Violation, yaml_documents};
use serde_json::Value;

use super::{Io, Session};
use crate::cli::ApplyArgs;
use crate::client::Upsert;
use crate::output;

/// How long fetching a `-f https://...` may take.
const URL_TIMEOUT: Duration = Duration::from_secs(10);
/// Extensions read from a directory.
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// A document ready to send: its parsed form and the JSON the user wrote.
struct Pending {
    doc: ResourceDocument,
    body: Value,
}

pub fn run(session: &Session, args: &ApplyArgs, io: &mut Io<'_>) -> anyhow::Result<()> {
    let vars = args.var_map();
    let mut values = Vec::new();
    for source in &args.files {
        let text = read_source(source, io)?;
        let text = if vars.is_empty() {
            text
        } else {
            kuma_api::template::render(&text, &vars)
        };
        let docs = yaml_documents(&text).map_err(|e| anyhow!("{source}: {e}"))?;
        values.extend(docs);
    }
    if values.is_empty() {
        bail!("no resource(s) passed to apply");
    }

    let pending = check_all(values, io.stderr)?;

    if args.dry_run {
        return print_dry_run(&pending, io.stdout);
    }
    let client = session.client()?;
    for Pending { doc, body } in &pending {
        let mesh = doc.mesh.as_deref().unwrap_or("");
        let described = format!(
            "resource type={:?} mesh={:?} name={:?}",
            doc.kind().name(),
            mesh,
            doc.name
        );
        let outcome = client
            .upsert(doc.kind(), mesh, &doc.name, body)
            .map_err(|e| anyhow!("{described}: failed server side: {e}"))?;
        let action = match outcome {
            Upsert::Created => "Created",
            Upsert::Updated => "Updated",
        };
        writeln!(io.stdout, "{described} {action}")?;
    }
    Ok(())
}

/// Parses and validates every document, reporting all problems of all
/// documents before failing, so that nothing is applied from a bad batch.
fn check_all(values: Vec<Value>, stderr: &mut dyn Write) -> anyhow::Result<Vec<Pending>> {
    let mut pending = Vec::new();
    let mut failed = false;
    for (i, body) in values.into_iter().enumerate() {
        let doc = match ResourceDocument::from_json(body.clone()) {
            Ok(doc) => doc,
            Err(e) => {
                writeln!(
                    stderr,
                    "resource[{i}]: failed to parse resource: {}",
                    describe(&e)
                )?;
                failed = true;
                continue;
            }
        };
        if let Err(e) = doc.validate() {
            let (meta, spec): (Vec<Violation>, Vec<Violation>) =
                e.violations().iter().cloned().partition(is_meta);
            if !spec.is_empty() || e.violations().is_empty() {
                let text = if spec.is_empty() {
                    e.to_string()
                } else {
                    join(&spec)
                };
                writeln!(stderr, "resource[{i}]: failed to parse resource: {text}")?;
            }
            if !meta.is_empty() {
                writeln!(
                    stderr,
                    "resource[{i}]: failed to read meta: {}",
                    join(&meta)
                )?;
            }
            failed = true;
            continue;
        }
        pending.push(Pending { doc, body });
    }
    if failed {
        bail!("failed to validate some resources");
    }
    Ok(pending)
}

fn is_meta(v: &Violation) -> bool {
    v.field == "name" || v.field == "mesh" || v.field.starts_with("labels")
}

fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Invalid(v) if !v.is_empty() => join(v),
        other => other.to_string(),
    }
}

/// `field: message; field: message`, Kuma's way of listing violations.
fn join(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.field.is_empty() {
                v.message.clone()
            } else {
                format!("{}: {}", v.field, v.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Each resource as it would be stored, separated by `---`.
fn print_dry_run(pending: &[Pending], out: &mut dyn Write) -> anyhow::Result<()> {
    // Kuma shows unsaved resources with the zero time.
    let zero = DateTime::from_timestamp(-62_135_596_800, 0).unwrap_or_default();
    for (i, Pending { doc, .. }) in pending.iter().enumerate() {
        if i > 0 {
            writeln!(out, "---")?;
        }
        let value = doc.clone().into_resource(zero).to_json();
        write!(out, "{}", output::to_yaml(&value)?)?;
    }
    Ok(())
}

fn read_source(source: &str, io: &mut Io<'_>) -> anyhow::Result<String> {
    if source == "-" {
        let mut text = String::new();
        io.stdin
            .read_to_string(&mut text)
            .context("error while reading provided file")?;
        return Ok(text);
    }
    if source.starts_with("http://") || source.starts_with("https://") {
        return read_url(source);
    }
    let path = Path::new(source);
    let meta = std::fs::metadata(path).context("error while reading provided file")?;
    if meta.is_dir() {
        return read_directory(path);
    }
    std::fs::read_to_string(path).context("error while reading provided file")
}

fn read_url(url: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(url).context("invalid URL for --file")?;
    let client = reqwest::blocking::Client::builder()
        .timeout(URL_TIMEOUT)
        .build()
        .context("error creating new http request")?;
    let resp = client
        .get(url)
        .send()
        .context("error with GET http request")?;
    if resp.status() != reqwest::StatusCode::OK {
        bail!("error while retrieving URL");
    }
    resp.text().context("error while reading provided file")
}

/// Every `.yaml`, `.yml` and `.json` file directly in `dir`, by name, as one
/// stream of documents.
fn read_directory(dir: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).context("error reading directory")? {
        let path = entry.context("error reading directory")?.path();
        // Follows symlinks, so a link to a directory is skipped too.
        if !path.is_file() {
            continue;
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if ext.is_some_and(|e| EXTENSIONS.contains(&e.as_str())) {
            files.push(path);
        }
    }
    files.sort();
    let mut combined = String::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("error reading file {}", file.display()))?;
        if !combined.is_empty() {
            combined.push_str("\n---\n");
        }
        combined.push_str(&text);
    }
    Ok(combined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_documents_are_all_reported_with_field_paths() {
        let values = vec![
            json!({"type": "Mesh", "name": "ok"}),
            json!({"type": "MeshTimeout", "name": "t1"}),
            json!({"type": "NoSuchKind", "name": "x"}),
        ];
        let mut err = Vec::new();
        let result = check_all(values, &mut err);
        let err = String::from_utf8(err).unwrap();
        assert_eq!(
            result.err().map(|e| e.to_string()),
            Some("failed to validate some resources".into())
        );
        assert!(
            err.contains("resource[1]: failed to read meta: mesh: cannot be empty"),
            "{err}"
        );
        assert!(
            err.contains("resource[2]: failed to parse resource: unknown type \"NoSuchKind\""),
            "{err}"
        );
        assert!(!err.contains("resource[0]"), "{err}");
    }

    #[test]
    fn directories_are_read_in_name_order_skipping_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), "name: b").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "name: a").unwrap();
        std::fs::write(dir.path().join("c.json"), "{\"name\": \"c\"}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let text = read_directory(dir.path()).unwrap();
        assert_eq!(text, "name: a\n---\nname: b\n---\n{\"name\": \"c\"}");
    }

    #[test]
    fn dry_run_prints_documents_with_zero_times() {
        let docs = [
            json!({"type": "Mesh", "name": "m1"}),
            json!({"type": "Mesh", "name": "m2"}),
        ];
        let pending: Vec<Pending> = docs
            .iter()
            .map(|v| Pending {
                doc: ResourceDocument::from_json(v.clone()).unwrap(),
                body: v.clone(),
            })
            .collect();
        let mut out = Vec::new();
        print_dry_run(&pending, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("name: m1\ncreationTime: 0001-01-01T00:00:00Z"),
            "{out}"
        );
        assert_eq!(out.matches("---\n").count(), 1, "{out}");
    }
}
