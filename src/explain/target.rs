//! What a map explains: the cosine similarity of an image's embedding to a target
//! embedding — its nearest training neighbour (default), a class centroid, or the
//! embedding of another image (pytorch-grad-cam's "similarity to concept" target), or
//! the centroid of the class the image was predicted as — optionally contrasted with a
//! class centroid: cos(f, target) − cos(f, centroid of CLASS) (`--contrast`).

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
    /// The centroid of the class each image is predicted as (majority vote).
    Predicted,
}

/// What the score is contrasted with: cos(f, target) − cos(f, contrast).
#[derive(Debug, Clone, PartialEq)]
pub enum ContrastChoice {
    /// The centroid of a class's gallery embeddings (`--contrast CLASS`).
    Class(String),
    /// The centroid of each image's own true class (the report's misclassified samples:
    /// predicted class against true class).
    TrueClass,
}

/// Row-wise score of embeddings `[B, D]` against targets `[B, D]` (or `[1, D]`):
/// `cos(e, t)`, minus `cos(e, c)` for contrast embeddings `c` when given.
pub fn similarity_score(
    embeddings: &Tensor,
    targets: &Tensor,
    contrast: Option<&Tensor>,
) -> Tensor {
    let s = cosine_score(embeddings, targets);
    match contrast {
        Some(c) => s - cosine_score(embeddings, c),
        None => s,
    }
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
        // Contrast: cos(e, t) − cos(e, c); row 1 is (1, 1)/√2 against (0, 1) and (1, 0).
        let c = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
        let d: Vec<f32> = Vec::try_from(similarity_score(&e, &t, Some(&c))).unwrap();
        assert!((d[0] + 1.0).abs() < 1e-6 && d[1].abs() < 1e-6, "{d:?}");
        let plain: Vec<f32> = Vec::try_from(similarity_score(&e, &t, None)).unwrap();
        assert_eq!(plain, s);
    }
}
