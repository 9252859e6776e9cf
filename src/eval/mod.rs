//! Evaluation: nearest-neighbour search and retrieval metrics.

pub mod clustering;
pub mod cost;
pub mod enrol;
pub mod gallery;
pub mod knn;
pub mod metrics;
pub mod phase_model;
pub mod predict;
pub mod report;
pub mod run_eval;
