//! The fused score-and-select CPU kernel of dmlviz's exact kNN search
//! (`dmlviz::search::knn`): per query row, the `kept` smallest scores `lhs · rhs`
//! against every reference, with their indices, and the floor (the smallest score
//! left out), computed without a buffer of scores.
//!
//! The references are packed once into panels of [`PANEL`] (32 references × `d`,
//! component-major). A tile of 12 query rows × one panel is accumulated in 24 AVX-512
//! registers, each score one chain of f32 FMAs over its `d` components in order (so
//! a pair scores the same wherever it sits). Then each row compares its 32 fresh
//! scores with its threshold, the largest of its current candidates (+∞ until it holds
//! `kept`): usually none passes, and the scores only lower the row's running minimum
//! of what was left out; the few that pass enter the row's max-heap of candidates,
//! whose evicted top joins that minimum.
//!
//! [`Triangle`] searches the packed references against themselves, each pair once.
//!
//! Its own crate so that it is built optimised whatever dmlviz's own profile is.
//! Off x86-64, or on a CPU without AVX-512F, [`Packed::new`] returns `None` and the
//! caller keeps its own path.

mod packed;
mod selection;
mod simd;
mod smallest;
mod triangle;

pub use packed::Packed;
pub use selection::Selection;
pub use smallest::smallest;
pub use triangle::{gather, Triangle};

/// References per panel (two AVX-512 registers of f32).
pub const PANEL: usize = 32;

/// Query rows per tile: 12 × 2 accumulators leave 8 of the 32 registers for the
/// panel's two vectors and the broadcasts.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 12;

/// Tiles of rows walked per panel: the panel (16 KB at d = 128) stays in L1 while
/// the rows' packed queries (about 256 KB) come from L2; larger chunks are taken in
/// groups of this many tiles.
#[cfg(target_arch = "x86_64")]
const GROUP_TILES: usize = 43;

/// Whether this CPU runs the kernel (x86-64 with AVX-512F).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests;
