//! Similarity decomposition for a pair of images (Stylianou et al., WACV 2019): with
//! pooled features p = mean_i A(i), the cosine similarity of the pooled features splits
//! exactly over locations,
//! cos(p_q, p_n) = Σ_i A_q(i)·p_n / (h_q w_q |p_q| |p_n|) = Σ_j A_n(j)·p_q / (h_n w_n |p_q| |p_n|),
//! so each location's term says how much that region of the query (resp. the neighbour)
//! makes the two images similar. The decomposition is of the backbone's pooled features,
//! as the reference defines it; the embedding head comes after.

use super::chunk::Chunk;
use super::explainer::{ExplanationRecord, MapRecord};
use super::input::load_inputs;
use super::map::{scale_maps, SaliencyMap};
use super::method::{MethodInfo, MethodOutput, Pass, SaliencyMethod};
use super::target::TargetChoice;
use crate::eval::predict::Neighbour;
use crate::model::layers::apply_activation;
use anyhow::{Context, Result};
use image::RgbImage;
use tch::{Device, Kind, Tensor};

/// The similarity decomposition of each explained image with its reference image (when
/// given) and its nearest training images, as a saliency method.
pub struct Pair;

const INFO: MethodInfo = MethodInfo {
    name: "pair",
    aliases: &[],
    title: "Similarity decomposition",
    note: "Similarity decomposition (Stylianou et al.): per-location share of the pooled-feature cosine similarity of the pair, for each image.",
    passes: &[Pass::Forward],
    weight_store: false,
};

/// Keys and labels of the pair maps of the first neighbour in `explanations.json`.
const SAMPLE_COLUMNS: [(&str, &str); 2] = [
    ("pair_query", "pair map: query"),
    ("pair_neighbour", "pair map: neighbour"),
];

/// Pair maps of the explained image and one other image.
pub struct PairExplanation {
    /// The other image (a nearest training image, or the `--reference` image).
    pub other: Neighbour,
    /// `neighbour` or `reference`.
    pub role: &'static str,
    /// Cosine similarity of the two pooled feature vectors (the maps' sum).
    pub similarity: f64,
    /// Where the explained image resembles the other.
    pub query: SaliencyMap,
    /// Where the other resembles the explained image.
    pub other_map: SaliencyMap,
    /// The other image as the network sees it.
    pub other_image: RgbImage,
}

impl SaliencyMethod for Pair {
    fn info(&self) -> &'static MethodInfo {
        &INFO
    }

    fn explain(&self, chunk: &Chunk<'_>, out: &mut MethodOutput) -> Result<()> {
        for i in 0..chunk.len() {
            for (j, p) in pairs_of(chunk, i)?.into_iter().enumerate() {
                out.put_array(
                    i,
                    &format!("pair_{j}_query"),
                    p.query.to_tensor().squeeze_dim(0),
                );
                out.put_array(
                    i,
                    &format!("pair_{j}_other"),
                    p.other_map.to_tensor().squeeze_dim(0),
                );
                out.pairs[i].push(p);
            }
        }
        Ok(())
    }

    fn sample_columns(&self) -> Vec<(String, String)> {
        SAMPLE_COLUMNS
            .iter()
            .map(|(k, l)| (k.to_string(), l.to_string()))
            .collect()
    }

    fn sample_entries<'r>(&self, record: &'r ExplanationRecord) -> Vec<(String, &'r MapRecord)> {
        let Some(p) = record.neighbours.first().and_then(|n| n.pair.as_ref()) else {
            return Vec::new();
        };
        let [(query, _), (neighbour, _)] = SAMPLE_COLUMNS;
        vec![
            (query.to_string(), &p.query),
            (neighbour.to_string(), &p.neighbour),
        ]
    }
}

/// The images image `i` of a chunk is paired with: the reference image first (when the
/// target is one), then its nearest training images (up to `pair_neighbours`).
fn others(chunk: &Chunk<'_>, i: usize) -> Vec<(Neighbour, &'static str)> {
    let b = &chunk.base;
    let mut others = Vec::new();
    if let TargetChoice::Reference(p) = &b.options.target {
        let t = &b.target_info[i];
        let neighbour = Neighbour {
            class: t.class.clone().unwrap_or_default(),
            distance: 1.0 - t.score,
            path: p.clone(),
        };
        others.push((neighbour, "reference"));
    }
    others.extend(
        b.predictions[i]
            .neighbours
            .iter()
            .take(b.options.pair_neighbours)
            .map(|n| (n.clone(), "neighbour")),
    );
    others
}

/// Pair maps of image `i` of a chunk with each of its [`others`], from the forward pass's
/// activations and one forward pass of the other images.
fn pairs_of(chunk: &Chunk<'_>, i: usize) -> Result<Vec<PairExplanation>> {
    let b = &chunk.base;
    let others = others(chunk, i);
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let paths: Vec<_> = others.iter().map(|(n, _)| n.path.clone()).collect();
    let other_inputs = load_inputs(&paths, b.transform, b.device)?;
    let (_, a_n) = tch::no_grad(|| {
        b.net
            .forward_explained(&other_inputs.tensor, &mut apply_activation)
    });
    let n = paths.len() as i64;
    let a_q = b
        .activations
        .get(i as i64)
        .unsqueeze(0)
        .expand([n, -1, -1, -1], false);
    let terms = decompose(&a_q, &a_n);
    let qmaps = pair_maps(&terms.query, chunk.height, chunk.width)?;
    let (_, _, hn, wn) = other_inputs.tensor.size4()?;
    let nmaps = pair_maps(&terms.neighbour, hn, wn)?;
    let sims: Vec<f64> = Vec::try_from(terms.cosine.to_kind(Kind::Double).to_device(Device::Cpu))
        .context("reading the pooled cosines of the pairs")?;
    Ok(others
        .into_iter()
        .zip(qmaps.into_iter().zip(nmaps))
        .zip(other_inputs.images.into_iter().zip(sims))
        .map(
            |(((other, role), (query, other_map)), (other_image, similarity))| PairExplanation {
                other,
                role,
                similarity,
                query,
                other_map,
                other_image,
            },
        )
        .collect())
}

/// Decomposition of a batch of pairs: per-location terms of the query `[B, h_q, w_q]` and of
/// the neighbour `[B, h_n, w_n]`, each summing to the pair's pooled cosine `[B]`.
pub struct PairTerms {
    /// Query terms.
    pub query: Tensor,
    /// Neighbour terms.
    pub neighbour: Tensor,
    /// cos(p_q, p_n).
    pub cosine: Tensor,
}

/// Decomposes pairs of last-conv activations `a_q` `[B, C, h_q, w_q]` and `a_n` `[B, C, h_n, w_n]`.
pub fn decompose(a_q: &Tensor, a_n: &Tensor) -> PairTerms {
    let pq = a_q.mean_dim([2i64, 3].as_slice(), false, None);
    let pn = a_n.mean_dim([2i64, 3].as_slice(), false, None);
    let norm =
        pq.norm_scalaropt_dim(2.0, [1i64], false) * pn.norm_scalaropt_dim(2.0, [1i64], false);
    let norm = norm.clamp_min(1e-12);
    let locations = |a: &Tensor| (a.size()[2] * a.size()[3]) as f64;
    let terms = |a: &Tensor, other: &Tensor| {
        let t =
            (a * other.unsqueeze(-1).unsqueeze(-1)).sum_dim_intlist([1i64].as_slice(), false, None);
        t / (norm.unsqueeze(-1).unsqueeze(-1) * locations(a))
    };
    PairTerms {
        query: terms(a_q, &pn),
        neighbour: terms(a_n, &pq),
        cosine: (&pq * &pn).sum_dim_intlist([1i64].as_slice(), false, None) / &norm,
    }
}

/// [0, 1] maps of decomposition terms `[B, h, w]` at `height`×`width` (negative terms, which
/// non-negative activations cannot give, are cut by the ReLU as in Grad-CAM).
pub fn pair_maps(terms: &Tensor, height: i64, width: i64) -> Result<Vec<SaliencyMap>> {
    let reference: Vec<f64> = Vec::try_from(
        terms
            .abs()
            .amax([1i64, 2].as_slice(), false)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .context("reading the magnitude of pair terms")?;
    let dead = vec![false; reference.len()];
    scale_maps(&terms.relu(), &reference, &dead, height, width)
}
