//! `dmlviz report` (work in progress).

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct ReportArgs {}

pub fn run(_args: ReportArgs) -> Result<()> {
    bail!("dmlviz report is not implemented yet")
}
