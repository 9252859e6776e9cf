//! Nearest-neighbour search, the layer every user of embeddings shares: the
//! distances that losses and search agree on ([`distance`]), exact k-nearest-
//! neighbour search ([`knn`]) and precision@1 with its lone-query rule
//! ([`precision`]). It sits just above `data` (docs/DESIGN.md, "Layers"), so training,
//! evaluation, explanations and projections all call it and none calls another.

pub mod distance;
pub mod knn;
pub mod precision;

pub use distance::Distance;
