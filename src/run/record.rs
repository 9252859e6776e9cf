//! What every JSON record of a run directory shares: its `schema_version`, the
//! lenient reading rules, and reading one record file with errors that name it.
//!
//! Compatibility rules (both directions):
//! - a record without `schema_version` was written before versions existed and reads
//!   as version [`LEGACY_SCHEMA`];
//! - fields added later carry `#[serde(default)]`, so older files still read;
//! - no record read by the report denies unknown fields, so a newer file still reads
//!   in an older dmlviz (its new fields are ignored);
//! - `f64` fields that can hold a non-finite value read `null` (what serde_json
//!   writes for NaN and infinities) back as NaN.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::path::Path;

/// The schema version this dmlviz writes into every JSON record.
pub const SCHEMA_VERSION: u32 = 2;

/// The version of a record written before records carried `schema_version`.
pub const LEGACY_SCHEMA: u32 = 1;

/// `#[serde(default = ...)]` of `schema_version`: a file without it is a legacy one.
pub fn legacy_schema() -> u32 {
    LEGACY_SCHEMA
}

/// Reads a number that may have been written as `null` (non-finite) as NaN.
pub fn f64_or_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads the JSON record at `path`; `None` when the file does not exist. Errors name
/// the file (and serde's line and column).
pub fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(value))
}

/// Reads the JSON lines at `path` (blank lines skipped); `None` when the file does not
/// exist. Each line that does not parse is returned as an error naming the file and line,
/// so a reader can keep the good lines.
pub fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Option<Vec<Result<T>>>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} line {}", path.display(), i + 1))
            })
            .collect(),
    ))
}

/// `#[serde(default = ...)]` of a number missing from an older record: NaN, "not measured".
pub fn nan() -> f64 {
    f64::NAN
}
