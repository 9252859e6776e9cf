//! Helpers shared by the loss tests: small double-precision tensors, plain-f64
//! reference maths (independent of the tensor code under test) and a
//! finite-difference gradient check.

use tch::{Kind, Tensor};

/// `[rows, cols]` double tensor from row slices.
pub fn mat(rows: &[&[f64]]) -> Tensor {
    let cols = rows[0].len() as i64;
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, cols])
}

/// int64 label tensor.
pub fn labels(l: &[i64]) -> Tensor {
    Tensor::from_slice(l)
}

/// A double leaf tensor that records gradients, holding `t`'s values.
pub fn leaf(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Double)
        .detach()
        .copy()
        .set_requires_grad(true)
}

/// Reproducible standard-normal double tensor.
pub fn randn(shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, (Kind::Double, tch::Device::Cpu))
}

/// Value of a one-element tensor.
pub fn value(t: &Tensor) -> f64 {
    t.double_value(&[])
}

/// Rows of a 2-D tensor as plain vectors.
pub fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let t = t.detach().to_kind(Kind::Double).contiguous();
    let (n, d) = (t.size()[0], t.size()[1]);
    let flat = Vec::<f64>::try_from(t.view([-1])).unwrap();
    (0..n as usize)
        .map(|i| flat[i * d as usize..(i + 1) * d as usize].to_vec())
        .collect()
}

/// `v / ‖v‖`.
pub fn unit(v: &[f64]) -> Vec<f64> {
    let n = dot(v, v).sqrt();
    v.iter().map(|x| x / n).collect()
}

/// Dot product.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean distance.
pub fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// −log softmax(xs)[k], computed stably with plain floats.
pub fn neg_log_softmax(xs: &[f64], k: usize) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    lse - xs[k]
}

/// Column `j` of a row-major matrix given as rows.
pub fn column(m: &[Vec<f64>], j: usize) -> Vec<f64> {
    m.iter().map(|r| r[j]).collect()
}

/// Compares autograd's gradient of `f()` with respect to the leaf `x` (double,
/// requires grad) with central differences, and asserts that the relative error
/// max|autograd − numeric| / max(|autograd|, |numeric|) is below 1e-4 and that the
/// gradient is not trivially zero. `f` must read `x` afresh on every call (it is
/// perturbed in place).
pub fn check_grad(x: &Tensor, f: impl Fn() -> Tensor) -> f64 {
    assert_eq!(
        x.kind(),
        Kind::Double,
        "gradient checks run in double precision"
    );
    let y = f();
    let analytic = Tensor::run_backward(&[&y], &[x], false, false)
        .pop()
        .unwrap();
    let analytic = Vec::<f64>::try_from(analytic.contiguous().view([-1])).unwrap();
    let shape = x.size();
    let base = Vec::<f64>::try_from(x.detach().contiguous().view([-1])).unwrap();
    let mut target = x.shallow_clone();
    let mut set = |vals: &[f64]| {
        tch::no_grad(|| {
            target.copy_(&Tensor::from_slice(vals).view(shape.as_slice()));
        })
    };
    let eps = 1e-6;
    let mut numeric = vec![0.0; base.len()];
    for i in 0..base.len() {
        let mut v = base.clone();
        v[i] = base[i] + eps;
        set(&v);
        let fp = tch::no_grad(|| value(&f()));
        v[i] = base[i] - eps;
        set(&v);
        let fm = tch::no_grad(|| value(&f()));
        numeric[i] = (fp - fm) / (2.0 * eps);
    }
    set(&base);
    let max_abs = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let scale = max_abs(&analytic).max(max_abs(&numeric));
    assert!(
        scale > 1e-8,
        "gradient is zero: the check would prove nothing"
    );
    let err = analytic
        .iter()
        .zip(&numeric)
        .map(|(a, n)| (a - n).abs())
        .fold(0.0, f64::max)
        / scale;
    assert!(
        err < 1e-4,
        "relative gradient error {err:e}\nautograd {analytic:?}\nnumeric  {numeric:?}"
    );
    err
}
