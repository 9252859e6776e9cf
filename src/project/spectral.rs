//! UMAP's spectral initial layout (umap-learn `spectral_layout`): the eigenvectors of
//! the normalised graph Laplacian `L = I − D^{−1/2} A D^{−1/2}` with the smallest
//! non-zero eigenvalues. A graph of several connected components is laid out as
//! umap-learn's `multi_component_layout` does: each component's own spectral layout,
//! scaled to half the distance to the nearest other component and placed at its
//! component's position in a meta-layout (corners of a cross for up to 4 components,
//! else a spectral layout of the components' centroids).
//!
//! Eigenvectors: dense (LAPACK `eigh` through libtorch) for small components, restarted
//! Lanczos with full reorthogonalisation for large ones (tolerance 1e-4 as umap-learn
//! gives ARPACK; when it has not converged within its restarts the Ritz vectors reached
//! are used, a fine starting point for the optimisation that follows).

use crate::data::rng::Rng;
use crate::dot::dot;
use rayon::prelude::*;

/// A symmetric sparse graph in CSR form (what umap-rs's fuzzy simplicial set holds).
pub struct Graph<'a> {
    /// Row starts, `n + 1` entries.
    pub indptr: &'a [usize],
    /// Column of each stored entry.
    pub indices: &'a [u32],
    /// Weight of each stored entry.
    pub weights: &'a [f32],
}

impl Graph<'_> {
    fn n(&self) -> usize {
        self.indptr.len() - 1
    }
}

/// Components up to this size get exact dense eigenvectors.
const DENSE_LIMIT: usize = 400;

/// The spectral layout of `graph` in `dim` dimensions. `data` (row-major, `cols` wide)
/// gives the component centroids when more than `2·dim` components need placing.
/// Deterministic for a given `seed`.
pub fn spectral_layout(
    graph: &Graph,
    dim: usize,
    data: &[f32],
    cols: usize,
    seed: u64,
) -> Vec<f32> {
    let n = graph.n();
    let mut rng = Rng::new(seed);
    let (labels, count) = components(graph);
    let mut out = vec![0f32; n * dim];
    if count == 1 {
        let members: Vec<usize> = (0..n).collect();
        let layout = component_spectral(graph, &members, dim, &mut rng);
        out.copy_from_slice(&layout);
        return out;
    }
    let meta = meta_layout(&labels, count, dim, data, cols, &mut rng);
    for c in 0..count {
        let members: Vec<usize> = (0..n).filter(|&i| labels[i] == c).collect();
        let centre = &meta[c * dim..(c + 1) * dim];
        // Half the distance to the nearest other component.
        let mut nearest = f64::INFINITY;
        for o in (0..count).filter(|&o| o != c) {
            let d: f64 = (0..dim)
                .map(|k| ((meta[o * dim + k] - centre[k]) as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            if d > 0.0 {
                nearest = nearest.min(d);
            }
        }
        let range = if nearest.is_finite() {
            nearest / 2.0
        } else {
            1.0
        } as f32;
        let local: Vec<f32> = if members.len() < 2 * dim || members.len() <= dim + 1 {
            (0..members.len() * dim)
                .map(|_| (rng.next_f64() as f32 * 2.0 - 1.0) * range)
                .collect()
        } else {
            let mut l = component_spectral(graph, &members, dim, &mut rng);
            let max = l.iter().fold(0f32, |m, v| m.max(v.abs()));
            if max > 0.0 {
                l.iter_mut().for_each(|v| *v *= range / max);
            }
            l
        };
        for (r, &i) in members.iter().enumerate() {
            for k in 0..dim {
                out[i * dim + k] = local[r * dim + k] + centre[k];
            }
        }
    }
    out
}

/// Connected components: a label per vertex and their number.
pub fn components(graph: &Graph) -> (Vec<usize>, usize) {
    let n = graph.n();
    let mut label = vec![usize::MAX; n];
    let mut count = 0;
    let mut stack = Vec::new();
    for start in 0..n {
        if label[start] != usize::MAX {
            continue;
        }
        label[start] = count;
        stack.push(start);
        while let Some(v) = stack.pop() {
            for e in graph.indptr[v]..graph.indptr[v + 1] {
                let u = graph.indices[e] as usize;
                if graph.weights[e] > 0.0 && label[u] == usize::MAX {
                    label[u] = count;
                    stack.push(u);
                }
            }
        }
        count += 1;
    }
    (label, count)
}

/// Where each component goes: ±unit vectors for up to `2·dim` components, else the
/// spectral embedding of the affinity `exp(−d²)` between component centroids, scaled
/// to a largest coordinate of 1 (umap-learn `component_layout`).
fn meta_layout(
    labels: &[usize],
    count: usize,
    dim: usize,
    data: &[f32],
    cols: usize,
    rng: &mut Rng,
) -> Vec<f32> {
    let mut meta = vec![0f32; count * dim];
    if count <= 2 * dim {
        let half = count.div_ceil(2);
        for c in 0..count {
            let axis = c % half;
            if axis < dim {
                meta[c * dim + axis] = if c < half { 1.0 } else { -1.0 };
            }
        }
        return meta;
    }
    let mut centroids = vec![0f64; count * cols];
    let mut sizes = vec![0usize; count];
    for (i, &c) in labels.iter().enumerate() {
        sizes[c] += 1;
        for k in 0..cols {
            centroids[c * cols + k] += data[i * cols + k] as f64;
        }
    }
    for c in 0..count {
        for k in 0..cols {
            centroids[c * cols + k] /= sizes[c].max(1) as f64;
        }
    }
    let mut affinity = vec![0f64; count * count];
    for a in 0..count {
        for b in 0..count {
            let d2: f64 = (0..cols)
                .map(|k| (centroids[a * cols + k] - centroids[b * cols + k]).powi(2))
                .sum();
            affinity[a * count + b] = (-d2).exp();
        }
    }
    let vectors = dense_laplacian_eigenvectors(&affinity, count, dim, rng);
    let max = vectors.iter().fold(0f64, |m, v| m.max(v.abs()));
    for (m, v) in meta.iter_mut().zip(&vectors) {
        *m = if max > 0.0 { (v / max) as f32 } else { 0.0 };
    }
    meta
}

/// The spectral layout of one connected component (`members` are its vertices),
/// scaled to a largest coordinate of 10 with noise of 1e-4 (umap-learn).
fn component_spectral(graph: &Graph, members: &[usize], dim: usize, rng: &mut Rng) -> Vec<f32> {
    let m = members.len();
    let mut local = vec![usize::MAX; graph.n()];
    for (r, &i) in members.iter().enumerate() {
        local[i] = r;
    }
    let vectors = if m <= DENSE_LIMIT {
        let mut a = vec![0f64; m * m];
        for (r, &i) in members.iter().enumerate() {
            for e in graph.indptr[i]..graph.indptr[i + 1] {
                let c = local[graph.indices[e] as usize];
                if c != usize::MAX {
                    a[r * m + c] += graph.weights[e] as f64;
                }
            }
        }
        dense_laplacian_eigenvectors(&a, m, dim, rng)
    } else {
        sparse_laplacian_eigenvectors(graph, members, &local, dim, rng)
    };
    let max = vectors.iter().fold(0f64, |acc, v| acc.max(v.abs()));
    let scale = if max > 0.0 { 10.0 / max } else { 1.0 };
    vectors
        .iter()
        .map(|v| (v * scale + super::normal(rng) * 1e-4) as f32)
        .collect()
}

/// Row-major `[m, dim]`: eigenvectors 2..=dim+1 (by ascending eigenvalue) of the
/// normalised Laplacian of a dense affinity matrix.
fn dense_laplacian_eigenvectors(a: &[f64], m: usize, dim: usize, rng: &mut Rng) -> Vec<f64> {
    let degree: Vec<f64> = (0..m)
        .map(|i| a[i * m..(i + 1) * m].iter().sum::<f64>())
        .collect();
    let inv_sqrt: Vec<f64> = degree
        .iter()
        .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    // Largest eigenvalues of N = D^{-1/2} A D^{-1/2} are the smallest of L = I − N.
    let mut nmat = vec![0f64; m * m];
    for i in 0..m {
        for j in 0..m {
            nmat[i * m + j] = inv_sqrt[i] * a[i * m + j] * inv_sqrt[j];
        }
    }
    // LAPACK through libtorch: Jacobi is O(m³) per sweep and slow at a few hundred.
    let (values, vectors) = symmetric_eigen(&nmat, m);
    pick(&values, &vectors, m, dim, rng)
}

/// Eigenvectors 2..=dim+1 by descending eigenvalue (columns of row-major `vectors`).
fn pick(values: &[f64], vectors: &[f64], m: usize, dim: usize, rng: &mut Rng) -> Vec<f64> {
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&x, &y| {
        values[y]
            .partial_cmp(&values[x])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out = vec![0f64; m * dim];
    for k in 0..dim {
        match order.get(k + 1) {
            Some(&col) => (0..m).for_each(|i| out[i * dim + k] = vectors[i * m + col]),
            None => (0..m).for_each(|i| out[i * dim + k] = super::normal(rng) * 1e-4),
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns of a row-major `m × m` matrix) of a
/// symmetric matrix, by cyclic Jacobi rotations.
pub fn jacobi_eigen(matrix: &[f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut v = vec![0f64; m * m];
    (0..m).for_each(|i| v[i * m + i] = 1.0);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    for _sweep in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * m + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-13 * norm {
            break;
        }
        for p in 0..m {
            for q in p + 1..m {
                let apq = a[p * m + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..m {
                    let (akp, akq) = (a[k * m + p], a[k * m + q]);
                    a[k * m + p] = c * akp - s * akq;
                    a[k * m + q] = s * akp + c * akq;
                }
                for k in 0..m {
                    let (apk, aqk) = (a[p * m + k], a[q * m + k]);
                    a[p * m + k] = c * apk - s * aqk;
                    a[q * m + k] = s * apk + c * aqk;
                }
                for k in 0..m {
                    let (vkp, vkq) = (v[k * m + p], v[k * m + q]);
                    v[k * m + p] = c * vkp - s * vkq;
                    v[k * m + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..m).map(|i| a[i * m + i]).collect(), v)
}

/// Largest Krylov basis of one run before an explicit restart.
const KRYLOV: usize = 96;
/// Explicit restarts before the Ritz vectors reached are used as they are.
const RESTARTS: usize = 4;
/// Residual `‖Mx − θx‖` at which a Ritz pair counts as converged (umap-learn gives
/// ARPACK tol 1e-4).
const TOLERANCE: f64 = 1e-4;

/// The `dim` largest eigenvectors of `N = D^{-1/2} A D^{-1/2}` on one component, past
/// its known top eigenvector `√d`, by block Lanczos on `N + I` (shifted so the wanted
/// eigenvalues near 2 dominate those near 0; the block of `dim + 2` vectors resolves
/// repeated eigenvalues, which a single-vector Krylov space cannot): see
/// [`block_krylov`] and docs/REFERENCE.md, "Spectral start". Each step is one sparse
/// product, O(nnz), parallel over rows.
fn sparse_laplacian_eigenvectors(
    graph: &Graph,
    members: &[usize],
    local: &[usize],
    dim: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    let m = members.len();
    let degree: Vec<f64> = members
        .iter()
        .map(|&i| {
            (graph.indptr[i]..graph.indptr[i + 1])
                .filter(|&e| local[graph.indices[e] as usize] != usize::MAX)
                .map(|e| graph.weights[e] as f64)
                .sum()
        })
        .collect();
    let inv_sqrt: Vec<f64> = degree
        .iter()
        .map(|&d| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    let mut top: Vec<f64> = degree.iter().map(|d| d.sqrt()).collect();
    normalise(&mut top);
    // N's entries in the component's own numbering, made once: each of the Lanczos
    // products then reads two arrays per entry instead of looking up four.
    let mut starts = Vec::with_capacity(m + 1);
    let mut entries: Vec<(u32, f64)> = Vec::new();
    starts.push(0);
    for (r, &i) in members.iter().enumerate() {
        for e in graph.indptr[i]..graph.indptr[i + 1] {
            let c = local[graph.indices[e] as usize];
            if c != usize::MAX {
                entries.push((
                    c as u32,
                    inv_sqrt[r] * graph.weights[e] as f64 * inv_sqrt[c],
                ));
            }
        }
        starts.push(entries.len());
    }
    let apply = |x: &[f64], y: &mut [f64]| {
        y.par_iter_mut().enumerate().for_each(|(r, out)| {
            let row = &entries[starts[r]..starts[r + 1]];
            *out = row.iter().map(|&(c, w)| w * x[c as usize]).sum::<f64>() + x[r];
        });
    };
    let block = (dim + 2).min(m - 1);
    let krylov = KRYLOV.min(m - 1).max(block);
    let mut start: Vec<Vec<f64>> = (0..block)
        .map(|_| (0..m).map(|_| super::normal(rng)).collect())
        .collect();
    let mut ritz = Vec::new();
    for _restart in 0..=RESTARTS {
        let (vectors, converged) = block_krylov(&apply, &start, &top, krylov, dim);
        if converged {
            ritz = vectors;
            break;
        }
        // Restart from the best vectors reached (all `block` of them, not just `dim`).
        start = vectors;
        ritz = start.clone();
    }
    let mut out = vec![0f64; m * dim];
    for (k, v) in ritz.iter().enumerate().take(dim) {
        for i in 0..m {
            out[i * dim + k] = v[i];
        }
    }
    out
}

/// Block Krylov (block Lanczos with full reorthogonalisation) of the symmetric
/// operator `apply` from the block `start`, kept orthogonal to `top`: the basis grows
/// by the orthonormalised images of its newest block; every block, Rayleigh–Ritz on
/// `H = Qᵀ M Q` (kept column by column) gives Ritz pairs, whose residuals
/// `‖MQs − θQs‖` are checked. Returns `start.len()` Ritz vectors (largest first) and
/// whether the first `dim` converged within `krylov` basis vectors.
fn block_krylov(
    apply: &(dyn Fn(&[f64], &mut [f64]) + Sync),
    start: &[Vec<f64>],
    top: &[f64],
    krylov: usize,
    dim: usize,
) -> (Vec<Vec<f64>>, bool) {
    let m = top.len();
    let keep = start.len();
    let (mut basis, mut images): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    let mut h: Vec<Vec<f64>> = Vec::new();
    let mut pending: Vec<Vec<f64>> = start.to_vec();
    loop {
        let before = basis.len();
        // Orthonormalise the new block against everything and add it, with its images:
        // against the basis as a block (each basis vector read once for the whole
        // block; at 70 000 points the basis is far larger than the cache, so memory
        // traffic, not arithmetic, bounds this), then within the block.
        let mut block = std::mem::take(&mut pending);
        block_reorthogonalise(&mut block, &basis, top);
        for mut v in block {
            reorthogonalise(&mut v, &basis[before..]);
            let norm = dot(&v, &v).sqrt();
            if norm < 1e-8 || basis.len() >= krylov {
                continue;
            }
            v.iter_mut().for_each(|x| *x /= norm);
            let mut w = vec![0f64; m];
            apply(&v, &mut w);
            let all: Vec<&[f64]> = basis.iter().map(Vec::as_slice).collect();
            let column: Vec<f64> = dots(&all, &[&w]).into_iter().map(|d| d[0]).collect();
            for (row, &c) in h.iter_mut().zip(&column) {
                row.push(c);
            }
            let mut own = column;
            own.push(dot(&v, &w));
            h.push(own);
            basis.push(v);
            images.push(w);
        }
        let p = basis.len();
        let full = p >= krylov;
        let added = p - before;
        let (values, coeffs) = ritz_pairs(&h, keep.min(p));
        let vectors = combine(&basis, &coeffs);
        let residual = combine(&images, &coeffs[..dim.min(coeffs.len())])
            .iter()
            .zip(&values)
            .zip(&vectors)
            .map(|((mx, &theta), x)| {
                mx.iter()
                    .zip(x)
                    .map(|(a, b)| (a - theta * b).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0f64, f64::max);
        // No new direction came in: the basis spans an invariant subspace.
        if residual < TOLERANCE || full || added == 0 || p + 1 >= m {
            return (vectors, residual < TOLERANCE || added == 0);
        }
        pending = images[before..].to_vec();
    }
}

/// Eigenpairs of the symmetric `p × p` matrix `h` (rows as vectors) with the `count`
/// largest eigenvalues, largest first: values and coefficient vectors.
fn ritz_pairs(h: &[Vec<f64>], count: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let p = h.len();
    let mut flat = vec![0f64; p * p];
    for i in 0..p {
        for j in 0..p {
            // Symmetrise: the two halves were computed from different products.
            flat[i * p + j] = 0.5 * (h[i][j] + h[j][i]);
        }
    }
    let (values, vectors) = symmetric_eigen(&flat, p);
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| {
        values[y]
            .partial_cmp(&values[x])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
        .iter()
        .take(count)
        .map(|&c| (values[c], (0..p).map(|i| vectors[i * p + c]).collect()))
        .unzip()
}

/// Eigenvalues and eigenvectors (columns of a row-major matrix) of a symmetric
/// `m × m` matrix: LAPACK through libtorch, Jacobi should it fail.
fn symmetric_eigen(a: &[f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    // One libtorch thread: the Ritz matrices are at most 96 × 96, and beside rayon's
    // workers, still spinning from the sparse products, two threads made each call
    // ten times slower.
    let _one = crate::device::OneTorchThread::new();
    let lapack = tch::no_grad(|| -> Result<(Vec<f64>, Vec<f64>), tch::TchError> {
        let (v, w) = tch::Tensor::from_slice(a)
            .view([m as i64, m as i64])
            .f_linalg_eigh("L")?;
        Ok((
            Vec::<f64>::try_from(&v)?,
            Vec::<f64>::try_from(&w.contiguous().view([-1]))?,
        ))
    });
    match lapack {
        Ok((values, vectors)) if values.len() == m && vectors.len() == m * m => (values, vectors),
        _ => jacobi_eigen(a, m),
    }
}

/// Gram–Schmidt of `v` against every vector of `basis`, twice ("twice is enough"
/// keeps the basis orthogonal to working precision).
fn reorthogonalise(v: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        for u in basis {
            let d = dot(v, u);
            v.iter_mut().zip(u).for_each(|(x, y)| *x -= d * y);
        }
    }
}

fn normalise(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Elements per piece of the parallel vector operations below: pieces are fixed, and
/// partial sums are added in piece order, so results do not depend on thread count.
const PIECE: usize = 4096;

/// Every `u · v` (`[us.len()][vs.len()]`), each `u` read once for all `v`, the pieces
/// of the vectors on rayon's threads.
fn dots(us: &[&[f64]], vs: &[&[f64]]) -> Vec<Vec<f64>> {
    let m = vs.first().map_or(0, |v| v.len());
    let partial: Vec<Vec<f64>> = (0..m.div_ceil(PIECE))
        .into_par_iter()
        .map(|c| {
            let range = c * PIECE..((c + 1) * PIECE).min(m);
            us.iter()
                .flat_map(|u| vs.iter().map(|v| dot(&u[range.clone()], &v[range.clone()])))
                .collect()
        })
        .collect();
    let mut total = vec![0f64; us.len() * vs.len()];
    for piece in &partial {
        total.iter_mut().zip(piece).for_each(|(t, p)| *t += p);
    }
    total.chunks(vs.len().max(1)).map(<[f64]>::to_vec).collect()
}

/// `out[k] += sign · Σⱼ coefficients[j][k] · us[j]` for every `k`, by pieces on
/// rayon's threads (each piece of `us` read once for all of `out`).
fn add_combinations(out: &mut [Vec<f64>], us: &[&[f64]], coefficients: &[Vec<f64>], sign: f64) {
    let m = out.first().map_or(0, Vec::len);
    let mut pieces: Vec<Vec<&mut [f64]>> = (0..m.div_ceil(PIECE)).map(|_| Vec::new()).collect();
    for v in out.iter_mut() {
        for (c, piece) in v.chunks_mut(PIECE).enumerate() {
            pieces[c].push(piece);
        }
    }
    pieces.into_par_iter().enumerate().for_each(|(c, mut vs)| {
        let start = c * PIECE;
        for (u, coefficient) in us.iter().zip(coefficients) {
            let u = &u[start..start + vs[0].len()];
            for (v, &a) in vs.iter_mut().zip(coefficient) {
                let a = sign * a;
                v.iter_mut().zip(u).for_each(|(x, y)| *x += a * y);
            }
        }
    });
}

/// Classical Gram–Schmidt of every vector of `block` against `top` and the basis,
/// twice, reading each basis vector once per pass for the whole block: all dot
/// products of a pass first, then the updates.
fn block_reorthogonalise(block: &mut [Vec<f64>], basis: &[Vec<f64>], top: &[f64]) {
    let all: Vec<&[f64]> = std::iter::once(top)
        .chain(basis.iter().map(Vec::as_slice))
        .collect();
    for _ in 0..2 {
        let vs: Vec<&[f64]> = block.iter().map(Vec::as_slice).collect();
        let d = dots(&all, &vs);
        add_combinations(block, &all, &d, -1.0);
    }
}

/// `Σⱼ s[j]·vs[j]` for each coefficient vector `s` of `coeffs`, reading each of `vs`
/// once for all of them.
fn combine(vs: &[Vec<f64>], coeffs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let m = vs.first().map_or(0, Vec::len);
    let mut out = vec![vec![0f64; m]; coeffs.len()];
    let us: Vec<&[f64]> = vs.iter().map(Vec::as_slice).collect();
    // add_combinations takes coefficients per input vector: transpose.
    let by_input: Vec<Vec<f64>> = (0..us.len())
        .map(|j| coeffs.iter().map(|s| s[j]).collect())
        .collect();
    add_combinations(&mut out, &us, &by_input, 1.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `n` vertices: its second and third Laplacian eigenvectors are cos/sin
    /// of the angle, so the layout is a circle.
    fn ring(n: usize) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        let (mut indptr, mut indices, mut weights) = (vec![0], vec![], vec![]);
        for i in 0..n {
            for j in [(i + n - 1) % n, (i + 1) % n] {
                indices.push(j as u32);
                weights.push(1.0);
            }
            indptr.push(indices.len());
        }
        (indptr, indices, weights)
    }

    fn is_circle(layout: &[f32], n: usize) {
        let radii: Vec<f32> = (0..n)
            .map(|i| (layout[2 * i].powi(2) + layout[2 * i + 1].powi(2)).sqrt())
            .collect();
        let mean = radii.iter().sum::<f32>() / n as f32;
        assert!(
            radii.iter().all(|r| (r - mean).abs() < 0.02 * mean),
            "not a circle: {radii:?}"
        );
    }

    #[test]
    fn jacobi_diagonalises() {
        let a = [2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0];
        let (mut values, _) = jacobi_eigen(&a, 3);
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (v, e) in values.iter().zip([1.0, 3.0, 5.0]) {
            assert!((v - e).abs() < 1e-10, "{values:?}");
        }
    }

    #[test]
    fn ring_becomes_a_circle_dense_and_sparse() {
        let n = 40;
        let (indptr, indices, weights) = ring(n);
        let g = Graph {
            indptr: &indptr,
            indices: &indices,
            weights: &weights,
        };
        is_circle(&spectral_layout(&g, 2, &vec![0.0; n], 1, 0), n);
        // The iterative path on the same kind of graph.
        let n = 60;
        let (indptr, indices, weights) = ring(n);
        let g = Graph {
            indptr: &indptr,
            indices: &indices,
            weights: &weights,
        };
        let members: Vec<usize> = (0..n).collect();
        let vectors = sparse_laplacian_eigenvectors(&g, &members, &members, 2, &mut Rng::new(1));
        is_circle(&vectors.iter().map(|&v| v as f32).collect::<Vec<_>>(), n);
    }

    #[test]
    fn block_krylov_matches_a_dense_eigen_solve() {
        tch::set_num_threads(1);
        // A connected random geometric graph on 150 points of the plane, weights
        // exp(−d²): the sparse path's 2-D subspace must be the dense solver's.
        let n = 150;
        let mut rng = Rng::new(5);
        let pts: Vec<(f64, f64)> = (0..n)
            .map(|_| (rng.next_f64() * 3.0, rng.next_f64()))
            .collect();
        let (mut indptr, mut indices, mut weights) = (vec![0], vec![], vec![]);
        for i in 0..n {
            for j in 0..n {
                let d2 = (pts[i].0 - pts[j].0).powi(2) + (pts[i].1 - pts[j].1).powi(2);
                if i != j && (d2 < 0.2 || j == (i + 1) % n) {
                    indices.push(j as u32);
                    weights.push((-d2).exp() as f32);
                }
            }
            indptr.push(indices.len());
        }
        // The ring edges (i, i+1) are one-directional: symmetrise by adding the reverse.
        let mut dense = vec![0f64; n * n];
        for i in 0..n {
            for e in indptr[i]..indptr[i + 1] {
                let j = indices[e] as usize;
                dense[i * n + j] = weights[e] as f64;
                dense[j * n + i] = weights[e] as f64;
            }
        }
        let (mut indptr, mut indices, mut weights) = (vec![0], vec![], vec![]);
        for i in 0..n {
            for j in 0..n {
                if dense[i * n + j] > 0.0 {
                    indices.push(j as u32);
                    weights.push(dense[i * n + j] as f32);
                }
            }
            indptr.push(indices.len());
        }
        let g = Graph {
            indptr: &indptr,
            indices: &indices,
            weights: &weights,
        };
        let members: Vec<usize> = (0..n).collect();
        let sparse = sparse_laplacian_eigenvectors(&g, &members, &members, 2, &mut Rng::new(1));
        let exact = dense_laplacian_eigenvectors(&dense, n, 2, &mut Rng::new(1));
        // Each exact eigenvector lies in the span of the sparse pair (unit vectors, so
        // the squared projection is 1 when it does).
        let col = |v: &[f64], k: usize| -> Vec<f64> { (0..n).map(|i| v[i * 2 + k]).collect() };
        let (s0, s1) = (col(&sparse, 0), col(&sparse, 1));
        assert!(dot(&s0, &s1).abs() < 1e-6);
        for k in 0..2 {
            let e = col(&exact, k);
            let proj = dot(&e, &s0).powi(2) + dot(&e, &s1).powi(2);
            assert!(
                (proj - 1.0).abs() < 1e-3,
                "eigenvector {k}: projection {proj}"
            );
        }
    }

    #[test]
    fn components_are_placed_apart() {
        // Two rings of 30: separate components at opposite corners.
        let (p1, i1, w1) = ring(30);
        let mut indptr = p1.clone();
        let mut indices = i1.clone();
        let weights: Vec<f32> = w1.iter().chain(&w1).copied().collect();
        indices.extend(i1.iter().map(|j| j + 30));
        indptr.extend(p1[1..].iter().map(|p| p + i1.len()));
        let g = Graph {
            indptr: &indptr,
            indices: &indices,
            weights: &weights,
        };
        assert_eq!(components(&g).1, 2);
        let layout = spectral_layout(&g, 2, &vec![0.0; 60], 1, 0);
        let mean = |r: std::ops::Range<usize>| {
            r.clone().map(|i| layout[2 * i]).sum::<f32>() / r.len() as f32
        };
        assert!(
            (mean(0..30) - 1.0).abs() < 0.1 && (mean(30..60) + 1.0).abs() < 0.1,
            "{} {}",
            mean(0..30),
            mean(30..60)
        );
    }
}
