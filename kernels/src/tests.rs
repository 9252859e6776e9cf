//! The kernel against an f64 brute force.

use super::*;

/// A small deterministic generator (no dependencies).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// An integer in −2 ..= 2.
    fn small(&mut self) -> f32 {
        ((self.next() + 1.0) * 2.5).floor().clamp(0.0, 4.0) - 2.0
    }
}

/// Every score in f64, per row: (score, reference) sorted, the excluded one left
/// out.
fn brute_force(lhs: &[f32], rhs: &[f32], d: usize, exclude: &[i64]) -> Vec<Vec<(f64, usize)>> {
    lhs.chunks_exact(d)
        .enumerate()
        .map(|(row, q)| {
            let mut all: Vec<(f64, usize)> = rhs
                .chunks_exact(d)
                .enumerate()
                .filter(|&(j, _)| exclude.get(row) != Some(&(j as i64)))
                .map(|(j, r)| (q.iter().zip(r).map(|(&x, &y)| x as f64 * y as f64).sum(), j))
                .collect();
            all.sort_by(|x, y| x.partial_cmp(y).unwrap());
            all
        })
        .collect()
}

/// Checks the kernel against the brute force: with `exact` (small integers, every
/// f32 product and sum exact) value for value; otherwise up to `tol`.
fn check(
    name: &str,
    lhs: &[f32],
    rhs: &[f32],
    d: usize,
    kept: usize,
    exclude: &[i64],
    exact: bool,
) {
    let (len, m) = (lhs.len() / d, rhs.len() / d);
    let Some(packed) = Packed::new(rhs, m, d) else {
        eprintln!("no AVX-512F: {name} not run");
        return;
    };
    let got = smallest(lhs, len, &packed, kept, exclude);
    check_selection(name, &got, lhs, rhs, d, kept, exclude, exact);
}

/// [`check`] of a given selection.
#[allow(clippy::too_many_arguments)]
fn check_selection(
    name: &str,
    got: &Selection,
    lhs: &[f32],
    rhs: &[f32],
    d: usize,
    kept: usize,
    exclude: &[i64],
    exact: bool,
) {
    let (len, m) = (lhs.len() / d, rhs.len() / d);
    let want = brute_force(lhs, rhs, d, exclude);
    let tol = if exact { 0.0 } else { 1e-5 * d as f64 };
    assert_eq!(got.scores.len(), len * kept, "{name}");
    assert_eq!(got.indices.len(), len * kept, "{name}");
    assert_eq!(got.floors.len(), len, "{name}");
    for (row, w) in want.iter().enumerate() {
        let scores = &got.scores[row * kept..(row + 1) * kept];
        let indices = &got.indices[row * kept..(row + 1) * kept];
        let filled = kept.min(w.len());
        let score_of: std::collections::HashMap<usize, f64> =
            w.iter().map(|&(s, j)| (j, s)).collect();
        let mut seen = std::collections::HashSet::new();
        for slot in 0..filled {
            let j = indices[slot] as usize;
            assert!(seen.insert(j), "{name}: row {row} repeats {j}");
            let s = *score_of
                .get(&j)
                .unwrap_or_else(|| panic!("{name}: row {row} got {j}"));
            assert!(
                (scores[slot] as f64 - s).abs() <= tol,
                "{name}: row {row} slot {slot}: {} vs {s}",
                scores[slot]
            );
            if slot > 0 {
                let (a, b) = (scores[slot - 1], scores[slot]);
                assert!(
                    a < b || (a == b && indices[slot - 1] < indices[slot]),
                    "{name}: row {row} slot {slot}: order"
                );
            }
            // The slot-th smallest, up to rounding.
            assert!(
                (scores[slot] as f64 - w[slot].0).abs() <= 2.0 * tol,
                "{name}: row {row} slot {slot}: {} is not the smallest {}",
                scores[slot],
                w[slot].0
            );
        }
        let excluded = exclude
            .get(row)
            .copied()
            .filter(|&j| j >= 0 && (j as usize) < m);
        for slot in filled..kept {
            assert_eq!(scores[slot], f32::INFINITY, "{name}: row {row} slot {slot}");
            let want_index = match excluded {
                Some(j) if slot == filled => j,
                _ => -1,
            };
            assert_eq!(indices[slot], want_index, "{name}: row {row} slot {slot}");
        }
        // The floor is the smallest score left out (not the excluded one).
        let left_out = w
            .iter()
            .filter(|(_, j)| !seen.contains(j))
            .map(|&(s, _)| s)
            .fold(f64::INFINITY, f64::min);
        let floor = got.floors[row] as f64;
        assert!(
            floor == left_out || (floor - left_out).abs() <= tol,
            "{name}: row {row} floor {floor} vs {left_out}"
        );
        if exact {
            assert!(
                w.len() <= filled || floor == w[filled].0,
                "{name}: row {row} floor"
            );
        }
    }
}

fn data(g: &mut Lcg, n: usize, d: usize, small: bool) -> Vec<f32> {
    (0..n * d)
        .map(|_| if small { g.small() } else { g.next() })
        .collect()
}

#[test]
fn random_data_every_shape() {
    let mut g = Lcg(1);
    for d in [1, 3, 16, 17, 128, 129] {
        for m in [1, 2, 31, 32, 33, 95, 200] {
            for len in [1, 11, 12, 13, 30] {
                let lhs = data(&mut g, len, d, false);
                let rhs = data(&mut g, m, d, false);
                for kept in [1, 3, 18, m, m + 3] {
                    let none: Vec<i64> = vec![];
                    check(
                        &format!("d={d} m={m} len={len} kept={kept}"),
                        &lhs,
                        &rhs,
                        d,
                        kept,
                        &none,
                        false,
                    );
                    let some: Vec<i64> = (0..len as i64)
                        .map(|row| {
                            if row % 3 == 1 {
                                -1
                            } else {
                                (row * 7) % (m as i64 + 1)
                            }
                        })
                        .collect();
                    check(
                        &format!("d={d} m={m} len={len} kept={kept} excluded"),
                        &lhs,
                        &rhs,
                        d,
                        kept,
                        &some,
                        false,
                    );
                }
            }
        }
    }
}

#[test]
fn tied_integer_data_is_exact() {
    // Small integers: every score is exact in f32, and many tie.
    let mut g = Lcg(2);
    for d in [1, 2, 5, 33] {
        for m in [7, 64, 100, 1000] {
            let len = 40;
            let lhs = data(&mut g, len, d, true);
            let rhs = data(&mut g, m, d, true);
            let same: Vec<i64> = (0..len as i64).collect();
            for kept in [1, 4, 18, 50] {
                let kept = kept.min(m);
                check(
                    &format!("ties d={d} m={m} kept={kept}"),
                    &lhs,
                    &rhs,
                    d,
                    kept,
                    &[],
                    true,
                );
                check(
                    &format!("ties d={d} m={m} kept={kept} same"),
                    &lhs,
                    &rhs,
                    d,
                    kept,
                    &same,
                    true,
                );
            }
        }
    }
}

/// The triangle self-search of `x` (`[m, d]`) with `parts` workers taking blocks
/// in turn, checked against the brute force on the lhs and rhs it stands for.
fn check_triangle(name: &str, x: &[f32], d: usize, kept: usize, norms: bool, exact: bool) {
    let m = x.len() / d;
    let (lhs, rhs): (Vec<f32>, Vec<f32>) = if norms {
        let mut lhs = Vec::new();
        let mut rhs = Vec::new();
        for r in x.chunks_exact(d) {
            lhs.extend(r.iter().map(|v| -2.0 * v));
            lhs.push(1.0);
            rhs.extend(r);
            rhs.push(r.iter().map(|v| v * v).sum());
        }
        (lhs, rhs)
    } else {
        (x.iter().map(|v| -v).collect(), x.to_vec())
    };
    let dp = d + norms as usize;
    let Some(packed) = Packed::new(&rhs, m, dp) else {
        eprintln!("no AVX-512F: {name} not run");
        return;
    };
    let blocks = Triangle::blocks(&packed);
    for exclude_self in [false, true] {
        let kept = if exclude_self {
            kept.min(m - 1).max(1)
        } else {
            kept.min(m)
        };
        let exclude: Vec<i64> = if exclude_self {
            (0..m as i64).collect()
        } else {
            vec![]
        };
        for workers in [1, 2, 3] {
            let mut parts: Vec<Triangle> = (0..workers)
                .map(|_| Triangle::new(&packed, kept, exclude_self, norms))
                .collect();
            for b in 0..blocks {
                parts[(b * 7 + 1) % workers].run(b);
            }
            let name = format!("{name} kept={kept} self={exclude_self} workers={workers}");
            let all = gather(&parts, 0..m);
            check_selection(&name, &all, &lhs, &rhs, dp, kept, &exclude, exact);
            // A range of rows is the same rows of the whole.
            let (a, b) = (m / 3, m - m / 4);
            let some = gather(&parts, a..b);
            assert_eq!(some.scores, all.scores[a * kept..b * kept], "{name}");
            assert_eq!(some.indices, all.indices[a * kept..b * kept], "{name}");
            assert_eq!(some.floors, all.floors[a..b], "{name}");
            // The same scores, bit for bit, as the one-sided kernel's (the floor
            // too; the candidates may differ among ties).
            let one = smallest(&lhs, m, &packed, kept, &exclude);
            assert_eq!(one.floors.len(), all.floors.len());
            for row in 0..m {
                let r = row * kept..(row + 1) * kept;
                assert_eq!(
                    one.scores[r.clone()],
                    all.scores[r],
                    "{name}: row {row} scores"
                );
                assert_eq!(one.floors[row], all.floors[row], "{name}: row {row} floor");
            }
        }
    }
}

#[test]
fn triangle_equals_brute_force() {
    let mut g = Lcg(4);
    for d in [1, 3, 16, 33, 128] {
        for m in [1, 2, 11, 12, 13, 31, 32, 33, 100, 517, 1100] {
            let x = data(&mut g, m, d, false);
            for kept in [1, 5, 22, 40] {
                for norms in [false, true] {
                    // Large cases at few settings (the brute force is slow).
                    if (m == 1 && kept > 1) || (m * d > 20_000 && kept % 2 == 1) {
                        continue;
                    }
                    check_triangle(
                        &format!("d={d} m={m} norms={norms}"),
                        &x,
                        d,
                        kept,
                        norms,
                        false,
                    );
                }
            }
        }
    }
}

#[test]
fn triangle_with_tied_integers_is_exact() {
    let mut g = Lcg(5);
    for d in [1, 2, 5] {
        for m in [7, 64, 600] {
            let mut x = data(&mut g, m, d, true);
            // Duplicated rows.
            for j in (3..m).step_by(3) {
                let (src, dst) = x.split_at_mut(j * d);
                dst[..d].copy_from_slice(&src[(j / 2) * d..(j / 2) * d + d]);
            }
            for kept in [1, 4, 18] {
                for norms in [false, true] {
                    check_triangle(
                        &format!("ties d={d} m={m} norms={norms}"),
                        &x,
                        d,
                        kept,
                        norms,
                        true,
                    );
                }
            }
        }
    }
}

#[test]
fn one_repeated_reference() {
    // Every score ties: the kept ones are some `kept` of them, the floor their value.
    let mut g = Lcg(3);
    let d = 9;
    let r = data(&mut g, 1, d, false);
    let rhs: Vec<f32> = r.iter().cycle().take(300 * d).copied().collect();
    let lhs = data(&mut g, 5, d, false);
    let packed = Packed::new(&rhs, 300, d);
    if let Some(packed) = packed {
        let got = smallest(&lhs, 5, &packed, 12, &[0, -1, 299, 5, 7]);
        for row in 0..5 {
            let s = &got.scores[row * 12..row * 12 + 12];
            assert!(s.iter().all(|&x| x == s[0]), "row {row}");
            assert_eq!(got.floors[row], s[0], "row {row}");
        }
    }
    check("repeated", &lhs, &rhs, d, 12, &[0, -1, 299, 5, 7], false);
    check(
        "repeated all",
        &lhs,
        &rhs,
        d,
        300,
        &[0, -1, 299, 5, 7],
        false,
    );
}
