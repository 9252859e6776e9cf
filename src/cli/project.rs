//! `dmlviz project` (work in progress).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct ProjectArgs {}

pub fn run(_args: ProjectArgs) -> Result<()> {
    bail!("dmlviz project is not implemented yet")
}

#[derive(Args)]
pub struct ProjectBenchArgs {}

pub fn bench(_args: ProjectBenchArgs) -> Result<()> {
    bail!("dmlviz bench project is not implemented yet")
}
