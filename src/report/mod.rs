//! The static report site: one page per run, and a comparison page across runs,
//! built from run directories alone (no retraining, no dataset needed).
//!
//! ```text
//! reports/                         dmlviz report --runs runs/ --out reports/
//!   index.html                     comparison: table of runs, test-accuracy curves
//!                                  of every run, precision-drop bar plot
//!   test-accuracy.png, test-accuracy2.png, precision-drop.png
//!   runs/<run>/index.html          one run's page (KPIs, curves, maps, galleries,
//!                                  explanations, tables, confusion, config, data)
//!   runs/<run>/*.png               its charts
//!   runs/<run>/phase-*/{projections,galleries,explanations}/
//!                                  copied from the run (TensorBoard files left out)
//! runs/<run>/report/index.html     the same page, written by `dmlviz train`, linking
//!                                  to the run's own files
//! ```
//!
//! Pages are static and self-contained: inline CSS and SVG, relative links only,
//! images loaded lazily, JavaScript only to sort tables. Rebuilding is incremental:
//! a run page whose input files did not change is not rendered again, and no file is
//! rewritten with the same bytes (see [`assets`]). Users write their conclusions
//! for a run in `runs/<run>/deductions.md` (see [`deductions`]).

pub mod assets;
pub mod bars;
pub mod check;
pub mod config_diff;
pub mod confusion;
pub mod curves;
pub mod deductions;
pub mod figure;
pub mod read;
pub mod run_page;
pub mod site;
pub mod tables;

pub use run_page::write_run_page;
pub use site::{write_site, SiteSummary};
