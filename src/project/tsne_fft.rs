//! t-SNE's repulsion by FFT-accelerated interpolation (FIt-SNE: Linderman, Rachh,
//! Hoskins, Steinerberger and Kluger, 2019; openTSNE's `negative_gradient_method="fft"`).
//!
//! The repulsion needs two sums over every pair, `Σ_j q_ij` (the normalisation Z) and
//! `Σ_j q_ij² (y_i − y_j)`, with `q = 1/(1 + d²)`. Both are N-body sums with smooth
//! kernels, so they are interpolated instead of summed:
//!
//! * the embedding's bounding square is cut into `boxes × boxes` equal boxes, `boxes` at
//!   least 50 and at least one per unit of span (openTSNE's `min_num_intervals = 50`,
//!   `ints_in_interval = 1`), rounded up to a size whose only prime factors are 2, 3 and 5
//!   (fast FFT sizes);
//! * each box holds 3 × 3 equispaced interpolation nodes (at the centres of its thirds,
//!   `n_interpolation_points = 3`); each point spreads its charges onto its box's nodes
//!   with the Lagrange basis polynomials of those nodes;
//! * the node charges are convolved with each kernel sampled on the node grid. That is
//!   a Toeplitz product, done as a circular convolution on the grid padded to twice its
//!   size per dimension, by libtorch's real FFT (`fft_rfft2` / `fft_irfft2`);
//! * the node potentials are interpolated back to the points with the same weights.
//!
//! Charges: 1 under the kernel `q` (gives Z, less each point's own `q(0) = 1`), and 1,
//! x, y under `q²` (gives `Σ q²·(y_i − y_j) = y_i·Σ q² − Σ q²·y_j`). Coordinates are
//! taken relative to the square's centre, so that difference loses few digits. Cost
//! `O(N + M² log M)` for `M` nodes per dimension, instead of `O(N²)`.
//!
//! Deterministic: the charges are spread in point order on one thread (the cheap part),
//! the interpolation back runs in parallel but writes disjoint rows.

use anyhow::Result;
use rayon::prelude::*;
use tch::Tensor;

/// Interpolation nodes per box and dimension (openTSNE's `n_interpolation_points`).
const NODES: usize = 3;
/// Fewest boxes per dimension (openTSNE's `min_num_intervals`).
const MIN_BOXES: usize = 50;
/// Boxes per unit of the embedding's span (openTSNE's `ints_in_interval`).
const BOXES_PER_UNIT: f64 = 1.0;

/// The square of boxes covering the embedding.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Lower corner coordinate (both dimensions: the square spans the larger range).
    lo: f64,
    /// Centre of the square, the origin the charges' coordinates are taken from.
    centre: f64,
    /// Boxes per dimension.
    boxes: usize,
    /// Width of one box.
    width: f64,
}

/// The smallest number ≥ `n` whose only prime factors are 2, 3 and 5.
fn smooth_at_least(n: usize) -> usize {
    (n.max(1)..)
        .find(|&m| {
            let mut r = m;
            for p in [2, 3, 5] {
                while r % p == 0 {
                    r /= p;
                }
            }
            r == 1
        })
        .expect("5-smooth numbers are unbounded")
}

impl Grid {
    fn covering(y: &[f64]) -> Grid {
        let (lo, hi) = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        // All points at one place: any positive span does.
        let span = (hi - lo).max(1e-12);
        let boxes = smooth_at_least(MIN_BOXES.max((span * BOXES_PER_UNIT) as usize));
        Grid {
            lo,
            centre: lo + span / 2.0,
            boxes,
            width: span / boxes as f64,
        }
    }

    /// Interpolation nodes per dimension.
    fn nodes(&self) -> usize {
        self.boxes * NODES
    }

    /// Distance between neighbouring nodes.
    fn spacing(&self) -> f64 {
        self.width / NODES as f64
    }

    /// The first node (per dimension) of the box holding coordinate `v`, and `v`'s
    /// Lagrange weights on that box's nodes.
    fn locate(&self, v: f64) -> (usize, [f64; NODES]) {
        let s = (v - self.lo) / self.width;
        // The upper edge belongs to the last box.
        let b = (s.floor().max(0.0) as usize).min(self.boxes - 1);
        (b * NODES, lagrange_weights(s - b as f64))
    }
}

/// Position of node `k` inside a unit box: the centre of its `k`-th of `NODES` parts.
fn node_position(k: usize) -> f64 {
    (k as f64 + 0.5) / NODES as f64
}

/// The Lagrange basis polynomials of the box's nodes at `t` (0 ≤ t ≤ 1 in box widths).
fn lagrange_weights(t: f64) -> [f64; NODES] {
    let mut w = [1.0; NODES];
    for (k, wk) in w.iter_mut().enumerate() {
        for l in (0..NODES).filter(|&l| l != k) {
            *wk *= (t - node_position(l)) / (node_position(k) - node_position(l));
        }
    }
    w
}

/// Both kernels, `q` and `q²`, at every node offset of the padded `2m × 2m` grid, laid
/// out for a circular convolution: index `a` stands for offset `a` below `m` and
/// `a − 2m` above (index `m` is never reached from the unpadded part).
fn kernels(m: usize, spacing: f64) -> Vec<f64> {
    let side = 2 * m;
    let offset = |a: usize| {
        if a < m {
            a as f64
        } else {
            a as f64 - side as f64
        }
    };
    let mut k = vec![0f64; 2 * side * side];
    let (q_part, q2_part) = k.split_at_mut(side * side);
    q_part
        .par_chunks_mut(side)
        .zip(q2_part.par_chunks_mut(side))
        .enumerate()
        .for_each(|(a, (q_row, q2_row))| {
            let da = offset(a) * spacing;
            for (b, (q, q2)) in q_row.iter_mut().zip(q2_row.iter_mut()).enumerate() {
                let db = offset(b) * spacing;
                *q = 1.0 / (1.0 + da * da + db * db);
                *q2 = *q * *q;
            }
        });
    k
}

/// Where one point's charges land: its box's first node per dimension and weights.
type Location = ((usize, [f64; NODES]), (usize, [f64; NODES]));

/// Repulsion on every point of the layout `y` (`[x0, y0, x1, y1, …]`): row `i` is
/// `(Σ_j q²·Δx, Σ_j q²·Δy, Σ_{j≠i} q)`, the same quantities as the exact sum and
/// Barnes–Hut in [`super::tsne`].
pub fn fft_repulsion(y: &[f64]) -> Result<Vec<[f64; 3]>> {
    let n = y.len() / 2;
    let grid = Grid::covering(y);
    let m = grid.nodes();
    let locations: Vec<Location> = (0..n)
        .into_par_iter()
        .map(|i| (grid.locate(y[2 * i]), grid.locate(y[2 * i + 1])))
        .collect();

    // Charges 1, x, y at the nodes, row-major (x node, y node), one m × m plane each.
    let plane = m * m;
    let mut charges = vec![0f64; 3 * plane];
    for (i, ((bx, wx), (by, wy))) in locations.iter().enumerate() {
        let (cx, cy) = (y[2 * i] - grid.centre, y[2 * i + 1] - grid.centre);
        for (a, wa) in wx.iter().enumerate() {
            for (b, wb) in wy.iter().enumerate() {
                let w = wa * wb;
                let at = (bx + a) * m + by + b;
                charges[at] += w;
                charges[plane + at] += w * cx;
                charges[2 * plane + at] += w * cy;
            }
        }
    }
    let potentials = convolve(&charges, m, grid.spacing())?;

    let forces = locations
        .par_iter()
        .enumerate()
        .map(|(i, ((bx, wx), (by, wy)))| {
            // Potentials: Σ q, Σ q², Σ q²·x, Σ q²·y (each point's own term included).
            let mut p = [0f64; 4];
            for (a, wa) in wx.iter().enumerate() {
                for (b, wb) in wy.iter().enumerate() {
                    let w = wa * wb;
                    let at = (bx + a) * m + by + b;
                    for (c, pc) in p.iter_mut().enumerate() {
                        *pc += w * potentials[c * plane + at];
                    }
                }
            }
            let (cx, cy) = (y[2 * i] - grid.centre, y[2 * i + 1] - grid.centre);
            // The own term: q(0) = 1 in Z; in the force it cancels (x·q² − q²·x).
            [cx * p[1] - p[2], cy * p[1] - p[3], p[0] - 1.0]
        })
        .collect();
    Ok(forces)
}

/// Node potentials `[Σ q·1, Σ q²·1, Σ q²·x, Σ q²·y]` (four `m × m` planes) from the
/// charge planes `[1, x, y]`, by FFT on the grid padded to `2m × 2m`.
///
/// libtorch runs on one thread here ([`crate::device::OneTorchThread`]), so the work is
/// split in two halves of five transforms each for the two rayon threads: the unit
/// charges under both kernels, and the x and y charges under `q²` (whose kernel is
/// transformed twice, once per half, so neither waits for the other).
fn convolve(charges: &[f64], m: usize, spacing: f64) -> Result<Vec<f64>> {
    let plane = m * m;
    let kernels = kernels(m, spacing);
    let q2 = &kernels[4 * plane..];
    let mut potentials = vec![0f64; 4 * plane];
    let (unit_part, xy_part) = potentials.split_at_mut(2 * plane);
    let (unit, xy) = rayon::join(
        || convolve_planes(&charges[..plane], 1, &kernels, 2, m, unit_part),
        || convolve_planes(&charges[plane..], 2, q2, 1, m, xy_part),
    );
    unit?;
    xy?;
    Ok(potentials)
}

/// `out` (`max(c, k)` planes of `m × m`) = the `c` charge planes convolved with the `k`
/// kernel planes (`2m × 2m` each, circular layout of [`kernels`]), one of `c` and `k`
/// being 1 and broadcast against the other.
fn convolve_planes(
    charges: &[f64],
    c: i64,
    kernels: &[f64],
    k: i64,
    m: usize,
    out: &mut [f64],
) -> Result<()> {
    let (m, side) = (m as i64, 2 * m as i64);
    let size = [side, side];
    // rfft2 with `s` larger than the input pads it with zeros.
    let charges_hat = Tensor::from_slice(charges).view([c, m, m]).f_fft_rfft2(
        size.as_slice(),
        [-2, -1],
        "backward",
    )?;
    let kernels_hat = Tensor::from_slice(kernels)
        .view([k, side, side])
        .f_fft_rfft2(size.as_slice(), [-2, -1], "backward")?;
    let potentials = (charges_hat * kernels_hat)
        .f_fft_irfft2(size.as_slice(), [-2, -1], "backward")?
        .narrow(1, 0, m)
        .narrow(2, 0, m)
        .contiguous();
    potentials.f_copy_data(out, out.len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::rng::Rng;

    /// The exact sums over every pair, in the rows [`fft_repulsion`] returns.
    fn exact(y: &[f64]) -> Vec<[f64; 3]> {
        (0..y.len() / 2)
            .map(|i| {
                let (fx, fy, z) = super::super::tsne::exact_repulsion(y, i);
                [fx, fy, z]
            })
            .collect()
    }

    /// Relative errors of Z (summed over points) and of the force field (Frobenius).
    fn errors(y: &[f64]) -> (f64, f64) {
        let (approx, truth) = (fft_repulsion(y).unwrap(), exact(y));
        let z = |rows: &[[f64; 3]]| rows.iter().map(|r| r[2]).sum::<f64>();
        let z_error = (z(&approx) - z(&truth)).abs() / z(&truth);
        let diff: f64 = approx
            .iter()
            .zip(&truth)
            .map(|(a, t)| (a[0] - t[0]).powi(2) + (a[1] - t[1]).powi(2))
            .sum();
        let norm: f64 = truth.iter().map(|t| t[0] * t[0] + t[1] * t[1]).sum();
        (z_error, (diff / norm).sqrt())
    }

    /// `n` points: Gaussian blobs of standard deviation `spread` around `centres`
    /// standard-normal centres scaled by `scale`, interleaved `[x0, y0, …]`.
    fn blobs(n: usize, centres: usize, scale: f64, spread: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let c: Vec<f64> = (0..2 * centres).map(|_| rng.normal() * scale).collect();
        (0..n)
            .flat_map(|i| {
                let k = i % centres;
                [
                    c[2 * k] + rng.normal() * spread,
                    c[2 * k + 1] + rng.normal() * spread,
                ]
            })
            .collect()
    }

    #[test]
    fn interpolated_repulsion_matches_the_exact_sums() {
        tch::set_num_threads(1);
        // (name, layout): a PCA-start-sized cloud, a mid-optimisation spread, a final
        // spread wider than 50 units (more than the minimum of boxes), and duplicates.
        let mut duplicated = blobs(1500, 6, 8.0, 1.0, 4);
        for i in 0..300 {
            duplicated[2 * (i + 300)] = duplicated[2 * i];
            duplicated[2 * (i + 300) + 1] = duplicated[2 * i + 1];
        }
        // Bounds: a few times the errors measured (tight ~1e-15, mid ~1e-6 / 6e-4, wide
        // ~2e-3 / 2e-2: boxes of width ~1 hold the kernels' curvature less well, the
        // accuracy openTSNE accepts). A flipped sign or the wrong kernel is off by ~1.
        let cases = [
            ("tight", blobs(1000, 4, 1e-4, 2e-5, 1), 1e-6, 1e-4),
            ("mid", blobs(2000, 10, 5.0, 1.0, 2), 1e-4, 5e-3),
            ("wide", blobs(1500, 12, 40.0, 3.0, 3), 5e-3, 6e-2),
            ("duplicates", duplicated, 1e-3, 3e-2),
        ];
        for (name, y, z_bound, force_bound) in cases {
            let grid = Grid::covering(&y);
            let (z_error, force_error) = errors(&y);
            eprintln!(
                "{name}: {} boxes, Z error {z_error:.2e}, force error {force_error:.2e}",
                grid.boxes
            );
            assert!(z_error < z_bound, "{name}: Z off by {z_error}");
            assert!(
                force_error < force_bound,
                "{name}: forces off by {force_error}"
            );
        }
        assert!(Grid::covering(&blobs(1500, 12, 40.0, 3.0, 3)).boxes > MIN_BOXES);
    }

    #[test]
    fn lagrange_weights_reproduce_quadratics_and_nodes() {
        for t in [0.0, 0.1, 0.5, 0.77, 1.0] {
            let w = lagrange_weights(t);
            let at = |f: &dyn Fn(f64) -> f64| -> f64 {
                (0..NODES).map(|k| w[k] * f(node_position(k))).sum()
            };
            assert!((at(&|_| 1.0) - 1.0).abs() < 1e-12);
            assert!((at(&|x| 3.0 * x * x - x + 2.0) - (3.0 * t * t - t + 2.0)).abs() < 1e-12);
        }
        let w = lagrange_weights(node_position(1));
        assert!((w[1] - 1.0).abs() < 1e-12 && w[0].abs() < 1e-12 && w[2].abs() < 1e-12);
    }

    #[test]
    fn box_counts_are_fast_fft_sizes_covering_the_span() {
        assert_eq!(smooth_at_least(50), 50);
        assert_eq!(smooth_at_least(51), 54);
        assert_eq!(smooth_at_least(97), 100);
        let grid = Grid::covering(&[-70.0, 3.0, 60.5, -1.0]);
        assert_eq!(grid.boxes, 135);
        assert!((grid.width * grid.boxes as f64 - 130.5).abs() < 1e-9);
        // The upper edge is in the last box, at its last node's far side.
        let (first, w) = grid.locate(60.5);
        assert_eq!(first, (grid.boxes - 1) * NODES);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // One point: a zero span still makes a grid, and no repulsion.
        let alone = fft_repulsion(&[2.0, 2.0]).unwrap();
        assert!(alone[0].iter().all(|v| v.abs() < 1e-9), "{alone:?}");
    }
}
