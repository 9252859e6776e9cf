//! Bringing models and embeddings made elsewhere into run directories
//! (docs/DESIGN.md, "Imported runs"):
//!
//! - [`model`]: `dmlviz import model`, a PyTorch `state_dict` of a whole embedding network
//!   (names mapped by [`keys`]) becomes a run with a checkpoint;
//! - [`embeddings`]: `dmlviz import embeddings`, train/test embedding matrices
//!   ([`matrix`]) with labels and image paths ([`labels`]) become a run without a network.
//!
//! Both write `provenance.json` (`run::provenance`) and nothing at all when the input is
//! refused.

pub mod embeddings;
pub mod keys;
pub mod labels;
pub mod matrix;
pub mod model;

use crate::run::RunDir;
use anyhow::{bail, Result};
use std::path::Path;

/// The run directory an import writes: `out` must not exist yet or be an empty folder,
/// so an import never mixes its files into another run.
pub(crate) fn new_run_dir(out: &Path) -> Result<RunDir> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none());
        if !matches!(empty, Ok(true)) {
            bail!(
                "{}: already exists and is not an empty folder; import into a new --out",
                out.display()
            );
        }
    }
    Ok(RunDir::new(out))
}
