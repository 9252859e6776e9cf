//! What a map explains: the cosine similarity of an image's embedding to a target
//! embedding — its nearest training neighbour (default), a class centroid, or the
//! embedding of another image (pytorch-grad-cam's "similarity to concept" target).

use anyhow::{bail, Result};
use std::path::PathBuf;
use tch::{Kind, Tensor};

/// Below this distance a neighbour is the image itself (or a copy): as a target it would
/// give a score with no gradient, so the nearest *other* image is taken.
pub const SELF_MATCH_DISTANCE: f64 = 1e-6;

/// How the target embedding is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetChoice {
    /// The nearest training (gallery) image that is not the image itself.
    Nearest,
    /// The centroid of a class's gallery embeddings.
    Class(String),
    /// The embedding of another image file.
    Reference(PathBuf),
}

/// Row-wise score `cos(e_b, t_b)` of embeddings `[B, D]` against targets `[B, D]` (or `[1, D]`).
pub fn cosine_score(embeddings: &Tensor, targets: &Tensor) -> Tensor {
    let t = targets
        .to_kind(embeddings.kind())
        .to_device(embeddings.device());
    Tensor::cosine_similarity(embeddings, &t.expand_as(embeddings), 1, 1e-8)
}

/// Mean of the rows of `embeddings` whose label is `label` (`[D]`); errors when the class
/// has no row.
pub fn class_centroid(
    embeddings: &Tensor,
    labels: &[usize],
    label: usize,
    class: &str,
) -> Result<Tensor> {
    let rows: Vec<i64> = labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l == label)
        .map(|(i, _)| i as i64)
        .collect();
    if rows.is_empty() {
        bail!("class {class:?} has no reference image in the gallery");
    }
    Ok(embeddings
        .index_select(0, &Tensor::from_slice(&rows))
        .to_kind(Kind::Float)
        .mean_dim([0i64].as_slice(), false, None))
}

/// Position of the first neighbour farther than [`SELF_MATCH_DISTANCE`] in a list sorted by
/// distance (the first one when all are self-matches).
pub fn first_other(distances: &[f64]) -> usize {
    distances
        .iter()
        .position(|&d| d > SELF_MATCH_DISTANCE)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_centroid() {
        let e = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0]).view([2, 2]);
        let t = Tensor::from_slice(&[0.0f32, 2.0]).view([1, 2]);
        let s: Vec<f32> = Vec::try_from(cosine_score(&e, &t)).unwrap();
        assert!(s[0].abs() < 1e-6 && (s[1] - 0.5f32.sqrt()).abs() < 1e-6);
        let c = class_centroid(&e, &[3, 3], 3, "x").unwrap();
        assert_eq!(Vec::<f32>::try_from(c).unwrap(), [1.0, 0.5]);
        assert!(class_centroid(&e, &[3, 3], 1, "cat")
            .unwrap_err()
            .to_string()
            .contains("cat"));
        assert_eq!(first_other(&[0.0, 1e-9, 0.2]), 2);
        assert_eq!(first_other(&[0.0]), 0);
    }
}
