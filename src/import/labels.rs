//! The label and image of each embedding row, from a CSV or JSON file, in row order.
//!
//! - CSV: a header line naming a `label` (or `class`) column and a `path` (or `image`,
//!   `file`) column, other columns ignored; one line per row; fields may be quoted
//!   (`"a, b"`, `""` for a quote).
//! - JSON: an array of objects `{"label": "cat", "path": "img/1.jpg"}` (a number label
//!   is its decimal text).
//!
//! A relative path is relative to the folder of the labels file, so a folder of
//! embeddings, labels and images can move as a whole.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// One row's label and image, and where it was read (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// Class name.
    pub label: String,
    /// The image, resolved against the labels file's folder.
    pub path: PathBuf,
    /// `line N` (CSV) or `entry N` (JSON) of the labels file.
    pub place: String,
}

/// Reads the rows of a labels file, by its extension (`.json`, else CSV).
pub fn read_labels(path: &Path) -> Result<Vec<LabelRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let rows = if json {
        json_rows(&text, path)?
    } else {
        csv_rows(&text, path)?
    };
    if rows.is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(rows
        .into_iter()
        .map(|(label, file, place)| LabelRow {
            label,
            path: base.join(file),
            place,
        })
        .collect())
}

/// (label, path, place) of each JSON entry.
fn json_rows(text: &str, path: &Path) -> Result<Vec<(String, String, String)>> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(entries) = value.as_array() else {
        bail!(
            "{}: expected an array of {{\"label\": ..., \"path\": ...}} objects",
            path.display()
        );
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let place = format!("entry {i} (counting from 0)");
            let field = |key: &str| match e.get(key) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            match (field("label"), field("path")) {
                (Some(l), Some(p)) => Ok((l, p, place)),
                _ => bail!(
                    "{} {place}: needs a \"label\" and a \"path\" (strings)",
                    path.display()
                ),
            }
        })
        .collect()
}

/// (label, path, place) of each CSV line after the header.
fn csv_rows(text: &str, path: &Path) -> Result<Vec<(String, String, String)>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((h, header)) = lines.next() else {
        bail!("{}: empty", path.display());
    };
    let header =
        split_fields(header).with_context(|| format!("{} line {}", path.display(), h + 1))?;
    let column = |names: &[&str]| {
        header
            .iter()
            .position(|c| names.iter().any(|n| c.trim().eq_ignore_ascii_case(n)))
    };
    let (Some(label_col), Some(path_col)) = (
        column(&["label", "class"]),
        column(&["path", "image", "file"]),
    ) else {
        bail!(
            "{} line {}: the header must name a `label` (or `class`) and a `path` (or \
             `image`, `file`) column, got {header:?}",
            path.display(),
            h + 1
        );
    };
    lines
        .map(|(i, line)| {
            let place = format!("line {}", i + 1);
            let fields =
                split_fields(line).with_context(|| format!("{} {place}", path.display()))?;
            match (fields.get(label_col), fields.get(path_col)) {
                (Some(l), Some(p)) if !p.trim().is_empty() => {
                    Ok((l.trim().to_string(), p.trim().to_string(), place))
                }
                _ => bail!(
                    "{} {place}: {} fields, the label and path need {}",
                    path.display(),
                    fields.len(),
                    label_col.max(path_col) + 1
                ),
            }
        })
        .collect()
}

/// The fields of one CSV line: commas separate, double quotes quote (`""` is a quote).
fn split_fields(line: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        bail!("a quoted field is not closed");
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_give_rows_resolved_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            "id,Class,image\n7,cat,a/1.png\n8,\"dog, big\",\"b/\"\"2\"\".png\"\n",
        )
        .unwrap();
        let rows = read_labels(&csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].label, "cat");
        assert_eq!(rows[0].path, dir.path().join("a/1.png"));
        assert_eq!(rows[1].label, "dog, big");
        assert_eq!(rows[1].path, dir.path().join("b/\"2\".png"));
        assert_eq!(rows[1].place, "line 3");

        let json = dir.path().join("labels.json");
        std::fs::write(
            &json,
            r#"[{"label": 3, "path": "x.png"}, {"label": "b", "path": "/abs.png"}]"#,
        )
        .unwrap();
        let rows = read_labels(&json).unwrap();
        assert_eq!(rows[0].label, "3");
        assert_eq!(rows[1].path, PathBuf::from("/abs.png"));

        std::fs::write(
            &json,
            r#"[{"label": "a", "path": "x.png"}, {"label": "b"}]"#,
        )
        .unwrap();
        let err = format!("{:#}", read_labels(&json).unwrap_err());
        assert!(err.contains("labels.json entry 1"), "{err}");
        std::fs::write(&csv, "label,path\ncat,a.png\ncat\n").unwrap();
        let err = format!("{:#}", read_labels(&csv).unwrap_err());
        assert!(err.contains("labels.csv line 3"), "{err}");
        std::fs::write(&csv, "name,file\n").unwrap();
        let err = format!("{:#}", read_labels(&csv).unwrap_err());
        assert!(err.contains("line 1") && err.contains("`label`"), "{err}");
        std::fs::write(&csv, "label,path\n\"open,a.png\n").unwrap();
        let err = format!("{:#}", read_labels(&csv).unwrap_err());
        assert!(
            err.contains("line 2") && err.contains("not closed"),
            "{err}"
        );
    }
}
