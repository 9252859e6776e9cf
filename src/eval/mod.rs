//! Evaluation: nearest-neighbour search and retrieval metrics.

pub mod knn;
