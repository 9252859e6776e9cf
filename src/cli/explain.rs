//! `dmlviz explain` (work in progress).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct ExplainArgs {}

pub fn run(_args: ExplainArgs) -> Result<()> {
    bail!("dmlviz explain is not implemented yet")
}

#[derive(Args)]
pub struct ExplainBenchArgs {}

pub fn bench(_args: ExplainBenchArgs) -> Result<()> {
    bail!("dmlviz bench explain is not implemented yet")
}
