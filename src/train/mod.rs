//! Training: the trainer loop, the trainable model bundle, optimisers, schedules.

pub mod embed;
pub mod eval_inputs;
pub mod experiment;
pub mod loss_scale;
pub mod model;
pub mod optimizer;
pub mod preflight;
pub mod schedule;
pub mod trainer;
