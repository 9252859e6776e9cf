//! The second t-SNE engine: linfa-tsne 0.8 (Barnes–Hut by bhtsne 0.4), chosen with
//! `dmlviz project --tsne-engine linfa`.
//!
//! It differs from ours ([`super::tsne`]) where the module documentation there says:
//! learning rate fixed at 200, a random start (no PCA layout), a single-threaded
//! vantage-point tree for the neighbour lists, and bhtsne's own randomness, so its
//! coordinates are not reproducible. Only its quality (trustworthiness) can be
//! compared, and `dmlviz bench project --method tsne-linfa` does that.
//!
//! bhtsne panics on a perplexity too large for the points, and divides by the largest
//! centred coordinate (zero when every row is the same): the perplexity is lowered
//! here, and [`validate`] refuses inputs with too few distinct rows, before calling it.

use super::input::{validate, Matrix};
use super::tsne::{TsneLayout, TsneParams};
use anyhow::{anyhow, ensure, Result};
use linfa::traits::Transformer;
use linfa_tsne::TSneParams;
use ndarray_linfa::Array2;

/// The perplexity bhtsne accepts for `n` points: below `(n − 1)/3`, with the whole
/// part tripled at most `n − 1` (its own check truncates the perplexity first).
fn usable_perplexity(requested: f64, n: usize) -> f64 {
    let limit = (n - 1) as f64 / 3.0;
    if requested < limit {
        requested
    } else {
        // Just below the limit: linfa-tsne rejects `3·perplexity > n − 1` in floating point.
        limit * (1.0 - 1e-9)
    }
}

/// The 2-D t-SNE layout of `points` by linfa-tsne (Euclidean distances between rows:
/// give unit rows for a cosine embedding). `params` gives the perplexity, θ and the
/// two phases' iterations; its learning rate is not used (bhtsne fixes 200) and its
/// early exaggeration is bhtsne's fixed 12.
pub fn tsne_linfa(points: &Matrix, params: &TsneParams) -> Result<TsneLayout> {
    validate(points, 3, "t-SNE input")?;
    ensure!(
        points.cols >= 2,
        "t-SNE input: at least 2 dimensions are needed for a 2-D layout"
    );
    ensure!(
        params.perplexity > 0.0 && params.theta >= 0.0,
        "t-SNE needs perplexity > 0 and θ ≥ 0"
    );
    let n = points.rows;
    let perplexity = usable_perplexity(params.perplexity, n);
    let data = Array2::from_shape_vec(
        (n, points.cols),
        points.data.iter().map(|&v| v as f64).collect(),
    )?;
    let layout = TSneParams::embedding_size(2)
        .perplexity(perplexity)
        .approx_threshold(params.theta)
        .max_iter(params.early_exaggeration_iter + params.n_iter)
        .preliminary_iter(params.early_exaggeration_iter)
        .transform(data)
        .map_err(|e| anyhow!("linfa-tsne: {e}"))?;
    let data: Vec<f32> = layout.iter().map(|&v| v as f32).collect();
    ensure!(
        data.iter().all(|v| v.is_finite()),
        "linfa-tsne returned a non-finite coordinate"
    );
    Ok(TsneLayout {
        layout: Matrix {
            rows: n,
            cols: 2,
            data,
        },
        perplexity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{clustered_points, quality};
    use crate::search::Distance;

    #[test]
    fn clustered_points_stay_clustered() {
        // 5 well-separated clusters in 20 dimensions; the layout is random, so only its
        // quality is asserted: neighbours in the layout are neighbours in the input.
        let (points, labels) = clustered_points(300, 20, 5, 0.3, 3);
        let params = TsneParams {
            n_iter: 300,
            ..Default::default()
        };
        let result = tsne_linfa(&points, &params).unwrap();
        assert_eq!((result.layout.rows, result.layout.cols), (300, 2));
        let trust =
            quality::trustworthiness(&points, &result.layout, 15, Distance::Euclidean).unwrap();
        assert!(trust > 0.9, "trustworthiness {trust}");
        let agreement = quality::knn_label_agreement(&result.layout, &labels, 15).unwrap();
        assert!(agreement > 0.9, "kNN label agreement {agreement}");
    }

    #[test]
    fn a_large_perplexity_is_lowered_not_a_panic() {
        let (points, _) = clustered_points(20, 4, 2, 0.5, 1);
        let result = tsne_linfa(&points, &TsneParams::default()).unwrap();
        assert!(result.perplexity < 19.0 / 3.0 && result.perplexity > 6.3);
        let constant = Matrix {
            rows: 10,
            cols: 3,
            data: vec![1.0; 30],
        };
        let e = tsne_linfa(&constant, &TsneParams::default()).unwrap_err();
        assert!(e.to_string().contains("distinct"), "{e}");
    }
}
