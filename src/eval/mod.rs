//! Evaluation: nearest-neighbour search and retrieval metrics.

pub mod clustering;
pub mod cost;
pub mod knn;
pub mod metrics;
pub mod report;
pub mod gallery;
pub mod predict;
pub mod phase_model;
pub mod run_eval;
