//! dmlviz: deep-metric-learning embedding networks for image classification —
//! train, evaluate by nearest-neighbour search, explain, project and report.
//!
//! Layers (a layer uses only layers below it): data → model → loss → train →
//! eval → project/explain → report → cli. See DESIGN.md.

pub mod atomic;
pub mod bench;
pub mod chart;
pub mod config;
pub mod data;
pub mod eval;
pub mod explain;
pub mod html;
pub mod imaging;
pub mod loss;
pub mod model;
pub mod project;
pub mod report;
pub mod run;
pub mod study;
pub mod tensor_io;
pub mod train;
