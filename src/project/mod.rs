//! 2-D maps of the embedding space: UMAP and t-SNE layouts with quality measures,
//! scatter plots, the interactive HTML map, exports, nearest-neighbour galleries.

pub mod input;
pub mod quality;
pub mod spectral;
pub mod umap;
pub mod tsne;

use crate::data::rng::Rng;

/// A standard normal draw (Box–Muller) from the project's seeded generator.
pub(crate) fn normal(rng: &mut Rng) -> f64 {
    let u = rng.next_f64().max(f64::MIN_POSITIVE);
    let v = rng.next_f64();
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Clustered synthetic points for tests and benchmarks: `clusters` centres drawn from
/// a standard normal in `dim` dimensions, each point a centre plus normal noise of
/// standard deviation `noise`, centres taken in turn. Returns the points and their
/// cluster labels. Deterministic for a seed.
pub fn clustered_points(n: usize, dim: usize, clusters: usize, noise: f64, seed: u64) -> (input::Matrix, Vec<i64>) {
    let mut rng = Rng::new(seed);
    let clusters = clusters.max(1);
    let centres: Vec<f64> = (0..clusters * dim).map(|_| normal(&mut rng)).collect();
    let mut data = Vec::with_capacity(n * dim);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % clusters;
        labels.push(c as i64);
        data.extend((0..dim).map(|k| (centres[c * dim + k] + noise * normal(&mut rng)) as f32));
    }
    (input::Matrix { rows: n, cols: dim, data }, labels)
}
