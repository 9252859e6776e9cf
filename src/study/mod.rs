//! The reference study re-run here (`dmlviz study`, `make study`): a grid of
//! experiments mirroring every row of the reference README's table on data that fits
//! 2 CPU cores, run resumably, with each finding of the reference checked against
//! our own measurements (holds / does not hold / not testable).
//!
//! Sits beside the report layer: it trains and evaluates through the layers below
//! and reads run directories like the report does.

pub mod findings;
pub mod grid;
pub mod page;
pub mod page_text;
pub mod results;
pub mod row;
pub mod runner;
