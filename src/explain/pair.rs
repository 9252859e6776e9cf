//! Similarity decomposition for a pair of images (Stylianou et al., WACV 2019): with
//! pooled features p = mean_i A(i), the cosine similarity of the pooled features splits
//! exactly over locations,
//! cos(p_q, p_n) = Σ_i A_q(i)·p_n / (h_q w_q |p_q| |p_n|) = Σ_j A_n(j)·p_q / (h_n w_n |p_q| |p_n|),
//! so each location's term says how much that region of the query (resp. the neighbour)
//! makes the two images similar. The decomposition is of the backbone's pooled features,
//! as the reference defines it; the embedding head comes after.

use super::map::{scale_maps, SaliencyMap};
use tch::{Kind, Tensor};

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
pub fn pair_maps(terms: &Tensor, height: i64, width: i64) -> Vec<SaliencyMap> {
    let reference: Vec<f64> = Vec::try_from(
        terms
            .abs()
            .amax([1i64, 2].as_slice(), false)
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu),
    )
    .unwrap_or_default();
    let dead = vec![false; reference.len()];
    scale_maps(&terms.relu(), &reference, &dead, height, width)
}
