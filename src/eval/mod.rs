//! Evaluation: nearest-neighbour search and retrieval metrics.

pub mod knn;
pub mod gallery;
pub mod predict;
pub mod phase_model;
