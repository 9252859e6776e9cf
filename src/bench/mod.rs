//! Benchmarks behind `dmlviz bench`: each measures a part of the pipeline beside a
//! reference measured in the same run, so figures are ratios that survive noisy machines.

pub mod embeddings;
pub mod explain;
pub mod knn;
pub mod loader;
pub mod project;
pub mod serve;
pub mod train;
