//! `provenance.json`: where an imported run's weights or embeddings came from. Written
//! by `dmlviz import model` and `dmlviz import embeddings`; its presence marks a run as
//! imported, not trained here (docs/DESIGN.md, "Imported runs"). Read by the report
//! (which then shows no training curves), by `eval` (an embeddings-only run is scored
//! from its stored embeddings) and by the commands that need a model (which refuse an
//! embeddings-only run, saying so).

use super::record::{legacy_schema, read_record};
use super::RunDir;
use crate::data::path_text;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `provenance.json` in the run directory.
pub const PROVENANCE_FILE: &str = "provenance.json";
/// [`Provenance::kind`] of a run whose network weights were imported.
pub const KIND_MODEL: &str = "model";
/// [`Provenance::kind`] of a run that holds imported embeddings and no network.
pub const KIND_EMBEDDINGS: &str = "embeddings";

/// What was imported into a run, from where, and what did not fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Layout version of this record ([`super::record`]).
    #[serde(default = "legacy_schema")]
    pub schema_version: u32,
    /// [`KIND_MODEL`] or [`KIND_EMBEDDINGS`] (a string: a newer dmlviz may add kinds).
    pub kind: String,
    /// The imported files, as given on the command line.
    #[serde(with = "path_text::vec")]
    pub sources: Vec<PathBuf>,
    /// Seconds since the Unix epoch when the import ran.
    pub imported_at_unix: u64,
    /// dmlviz version that imported it.
    pub dmlviz: String,
    /// How the model or embeddings were described on the command line (architecture,
    /// head, distance, key rewrites), one `key = value` string each.
    #[serde(default)]
    pub settings: Vec<String>,
    /// Number of tensors loaded into the network (model imports).
    #[serde(default)]
    pub loaded: usize,
    /// Network variables the file lacked, left as initialised (`--partial` only).
    #[serde(default)]
    pub missing: Vec<String>,
    /// File entries with no place in the network, ignored (`--partial` only).
    #[serde(default)]
    pub unexpected: Vec<String>,
    /// Variables whose shape in the file differed, left as initialised (`--partial` only).
    #[serde(default)]
    pub mismatched: Vec<String>,
}

impl Provenance {
    /// True for a run that holds embeddings but no network.
    pub fn embeddings_only(&self) -> bool {
        self.kind == KIND_EMBEDDINGS
    }

    /// One line saying where the run came from, for messages.
    pub fn summary(&self) -> String {
        format!("imported, not trained here: {}", self.origin())
    }

    /// What was imported from where: `weights from FILE` or `embeddings from FILES`.
    pub fn origin(&self) -> String {
        let files: Vec<String> = self
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let what = if self.embeddings_only() {
            "embeddings"
        } else {
            "weights"
        };
        format!("{what} from {}", files.join(", "))
    }
}

/// The run's provenance record; `None` for a run trained here. Errors name the file.
pub fn read(run: &RunDir) -> Result<Option<Provenance>> {
    read_record(&run.provenance())
}

/// Seconds since the Unix epoch, now (0 when the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::write_json;

    #[test]
    fn the_record_round_trips_and_reads_newer_and_older_files() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::new(tmp.path());
        assert!(read(&run).unwrap().is_none(), "a trained run has none");
        let full = Provenance {
            schema_version: crate::run::record::SCHEMA_VERSION,
            kind: KIND_MODEL.into(),
            sources: vec![PathBuf::from("w/model.pth")],
            imported_at_unix: 1_700_000_000,
            dmlviz: "0.1.0".into(),
            settings: vec!["arch = resnet18".into(), "map = enc.=trunk.".into()],
            loaded: 120,
            missing: vec!["head.bn.weight".into()],
            unexpected: vec!["backbone.extra".into()],
            mismatched: vec!["head.linear.weight (file [8, 512], model [16, 512])".into()],
        };
        write_json(&run.provenance(), &full).unwrap();
        assert_eq!(read(&run).unwrap().as_ref(), Some(&full));
        assert_eq!(
            full.summary(),
            "imported, not trained here: weights from w/model.pth"
        );
        assert!(!full.embeddings_only());

        // A newer file (unknown fields) and an older one (only the core) both read.
        std::fs::write(
            run.provenance(),
            r#"{"kind": "embeddings", "sources": ["a.npy", "b.npy"], "imported_at_unix": 5,
                "dmlviz": "9", "future": {"x": 1}}"#,
        )
        .unwrap();
        let p = read(&run).unwrap().unwrap();
        assert_eq!(p.schema_version, crate::run::record::LEGACY_SCHEMA);
        assert!(p.embeddings_only() && p.missing.is_empty());
        assert_eq!(p.origin(), "embeddings from a.npy, b.npy");
        std::fs::write(run.provenance(), "{").unwrap();
        let err = format!("{:#}", read(&run).unwrap_err());
        assert!(err.contains("provenance.json"), "{err}");
    }
}
