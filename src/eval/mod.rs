//! Evaluation: retrieval and clustering metrics, tables, the reference gallery and
//! prediction, over the nearest-neighbour search of [`crate::search`].

pub mod clustering;
pub mod cost;
pub mod enrol;
pub mod gallery;
pub mod gallery_store;
pub mod metrics;
pub mod phase_model;
pub mod predict;
pub mod report;
pub mod run_eval;
