//! UMAP's spectral initial layout (umap-learn `spectral_layout`): the eigenvectors of
//! the normalised graph Laplacian `L = I − D^{−1/2} A D^{−1/2}` with the smallest
//! non-zero eigenvalues. A graph of several connected components is laid out as
//! umap-learn's `multi_component_layout` does: each component's own spectral layout,
//! scaled to half the distance to the nearest other component and placed at its
//! component's position in a meta-layout (corners of a cross for up to 4 components,
//! else a spectral layout of the components' centroids).
//!
//! Eigenvectors: dense (LAPACK `eigh` through libtorch) for small components, block subspace iteration with
//! Rayleigh–Ritz for large ones (tolerance 1e-4 as umap-learn gives ARPACK; when it
//! has not converged within its iteration cap the subspace reached is used, a fine
//! starting point for the optimisation that follows).

use crate::data::rng::Rng;

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
/// Iteration cap of the subspace iteration.
const MAX_ITERATIONS: usize = 1000;

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
    // Jacobi stays as the fallback should LAPACK fail (it reports, rather than panics).
    let lapack = tch::no_grad(|| -> Result<(Vec<f64>, Vec<f64>), tch::TchError> {
        let (v, w) = tch::Tensor::from_slice(&nmat)
            .view([m as i64, m as i64])
            .f_linalg_eigh("L")?;
        Ok((
            Vec::<f64>::try_from(&v)?,
            Vec::<f64>::try_from(&w.contiguous().view([-1]))?,
        ))
    });
    match lapack {
        Ok((values, vectors)) if values.len() == m && vectors.len() == m * m => {
            pick(&values, &vectors, m, dim, rng)
        }
        _ => {
            let (values, vectors) = jacobi_eigen(&nmat, m);
            pick(&values, &vectors, m, dim, rng)
        }
    }
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

/// Rayleigh–Ritz on a block `X` and its image `Y = (N+I)X`: `H = XᵀY`, both rotated
/// to `H`'s eigenvectors (largest first); returns them and the largest residual
/// `‖y_k − θ_k x_k‖` of the first `dim` Ritz pairs.
fn rayleigh_ritz(
    block: &[Vec<f64>],
    next: &[Vec<f64>],
    dim: usize,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, f64) {
    let p = block.len();
    let m = block[0].len();
    let mut h = vec![0f64; p * p];
    for a in 0..p {
        for b in 0..p {
            h[a * p + b] = block[a].iter().zip(&next[b]).map(|(u, v)| u * v).sum();
        }
    }
    for a in 0..p {
        for b in 0..a {
            let s = 0.5 * (h[a * p + b] + h[b * p + a]);
            h[a * p + b] = s;
            h[b * p + a] = s;
        }
    }
    let (values, vectors) = jacobi_eigen(&h, p);
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| {
        values[y]
            .partial_cmp(&values[x])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let rotate = |src: &[Vec<f64>]| -> Vec<Vec<f64>> {
        order
            .iter()
            .map(|&c| {
                (0..m)
                    .map(|i| (0..p).map(|a| src[a][i] * vectors[a * p + c]).sum())
                    .collect()
            })
            .collect()
    };
    let x = rotate(block);
    let y = rotate(next);
    let theta: Vec<f64> = order.iter().map(|&c| values[c]).collect();
    let residual = (0..dim)
        .map(|k| {
            x[k].iter()
                .zip(&y[k])
                .map(|(a, b)| (b - theta[k] * a).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0f64, f64::max);
    (x, y, residual)
}

/// Block subspace iteration on `N = D^{-1/2} A D^{-1/2}` restricted to one
/// component, with Rayleigh–Ritz; the known top eigenvector `√d` is deflated.
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
    let apply = |x: &[f64], y: &mut [f64]| {
        // y = N x, with the top eigenvector projected out (its eigenvalue is 1).
        for (r, &i) in members.iter().enumerate() {
            let mut s = 0.0;
            for e in graph.indptr[i]..graph.indptr[i + 1] {
                let c = local[graph.indices[e] as usize];
                if c != usize::MAX {
                    s += graph.weights[e] as f64 * inv_sqrt[c] * x[c];
                }
            }
            y[r] = inv_sqrt[r] * s;
        }
        let dot: f64 = y.iter().zip(&top).map(|(a, b)| a * b).sum();
        y.iter_mut().zip(&top).for_each(|(v, t)| *v -= dot * t);
        // Shift by +1 so the wanted eigenvalues (near 1) dominate those near −1.
        y.iter_mut().zip(x).for_each(|(v, xv)| *v += xv);
    };
    let p = (dim + 6).min(m - 1);
    let mut block: Vec<Vec<f64>> = (0..p)
        .map(|_| (0..m).map(|_| super::normal(rng)).collect())
        .collect();
    let mut next = vec![vec![0f64; m]; p];
    orthonormalise(&mut block, &top);
    for iteration in 0..MAX_ITERATIONS {
        for (x, y) in block.iter().zip(next.iter_mut()) {
            apply(x, y);
        }
        let check = iteration % 10 == 9 || iteration + 1 == MAX_ITERATIONS;
        if check {
            let (x, y, residual) = rayleigh_ritz(&block, &next, dim);
            block = x;
            if residual < 1e-4 {
                break;
            }
            next = y;
        }
        std::mem::swap(&mut block, &mut next);
        orthonormalise(&mut block, &top);
    }
    let mut out = vec![0f64; m * dim];
    for k in 0..dim {
        for i in 0..m {
            out[i * dim + k] = block[k][i];
        }
    }
    out
}

fn normalise(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Modified Gram–Schmidt against `top` and each other.
fn orthonormalise(block: &mut [Vec<f64>], top: &[f64]) {
    for a in 0..block.len() {
        let (done, rest) = block.split_at_mut(a);
        let v = &mut rest[0];
        for _ in 0..2 {
            let dot: f64 = v.iter().zip(top).map(|(x, t)| x * t).sum();
            v.iter_mut().zip(top).for_each(|(x, t)| *x -= dot * t);
            for u in done.iter() {
                let dot: f64 = v.iter().zip(u).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(u).for_each(|(x, y)| *x -= dot * y);
            }
        }
        normalise(v);
    }
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
