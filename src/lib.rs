//! dmlviz: deep-metric-learning embedding networks for image classification —
//! train, evaluate by nearest-neighbour search, explain, project and report.
//!
//! The modules form layers, each using only the layers below it (base → data →
//! search → model/loss → run → train → eval → explain/project/pg_gallery →
//! report/serve →
//! study/bench → cli); docs/DESIGN.md, "Layers", has the table that
//! `tests/architecture.rs` enforces.

pub mod allocator;
pub mod atomic;
pub mod bench;
pub mod chart;
pub mod config;
pub mod data;
pub mod device;
pub mod dot;
pub mod eval;
pub mod explain;
pub mod html;
pub mod imaging;
pub mod import;
pub mod loss;
pub mod matrix;
pub mod mixed_precision;
pub mod model;
pub mod pg_gallery;
pub mod progress;
pub mod project;
pub mod report;
pub mod run;
pub mod search;
pub mod serve;
pub mod study;
pub mod tensor_io;
pub mod train;
