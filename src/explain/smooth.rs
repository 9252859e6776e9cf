//! The two smoothings of the CAM family (docs/REFERENCE.md, "CAM smoothing"), as
//! pytorch-grad-cam 1.5 does them:
//!
//! - `--aug-smooth`: test-time augmentation — the CAM of each of six versions of the input
//!   (no flip or a horizontal flip, times pixel values multiplied by 0.9, 1 or 1.1), each
//!   map flipped back, then the mean of the six maps;
//! - `--eigen-smooth`: instead of summing the weighted activations over channels, their
//!   projection on the first principal component (over locations) — Eigen-CAM's map of
//!   the weighted activations.

use super::map::SaliencyMap;
use anyhow::{Context, Result};
use tch::{Kind, Tensor};

/// One test-time augmentation: a horizontal flip or not, then a factor on the pixel values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmentation {
    /// Flip left–right.
    pub flip: bool,
    /// Multiplies the (normalised) input.
    pub factor: f64,
}

/// pytorch-grad-cam's default `tta_transforms` (ttach `HorizontalFlip` × `Multiply(0.9, 1,
/// 1.1)`), in ttach's order.
pub const AUGMENTATIONS: [Augmentation; 6] = [
    Augmentation {
        flip: false,
        factor: 0.9,
    },
    Augmentation {
        flip: false,
        factor: 1.0,
    },
    Augmentation {
        flip: false,
        factor: 1.1,
    },
    Augmentation {
        flip: true,
        factor: 0.9,
    },
    Augmentation {
        flip: true,
        factor: 1.0,
    },
    Augmentation {
        flip: true,
        factor: 1.1,
    },
];

impl Augmentation {
    /// The plain input.
    pub fn is_identity(self) -> bool {
        !self.flip && self.factor == 1.0
    }

    /// The augmented images of `x` `[B, 3, H, W]`.
    pub fn augment(self, x: &Tensor) -> Tensor {
        let x = if self.flip {
            x.flip([3])
        } else {
            x.shallow_clone()
        };
        if self.factor == 1.0 {
            x
        } else {
            x * self.factor
        }
    }

    /// A map of the augmented image, brought back onto the original image (the factor
    /// moves nothing; a flip is undone).
    pub fn deaugment(self, m: SaliencyMap) -> SaliencyMap {
        if !self.flip {
            return m;
        }
        let mut values = m.values.clone();
        for c in 0..m.channels {
            for r in 0..m.height {
                let row = (c * m.height + r) * m.width;
                values[row..row + m.width].reverse();
            }
        }
        SaliencyMap { values, ..m }
    }
}

/// The mean of maps of the same images (one list per augmentation, already brought back),
/// without rescaling (as pytorch-grad-cam); ok when any of them is.
pub fn mean_maps(per_aug: Vec<Vec<SaliencyMap>>) -> Vec<SaliencyMap> {
    let n = per_aug.len().max(1) as f32;
    let mut iter = per_aug.into_iter();
    let Some(mut acc) = iter.next() else {
        return Vec::new();
    };
    let mut ok: Vec<bool> = acc
        .iter()
        .map(|m| m.status == super::MapStatus::Ok)
        .collect();
    for maps in iter {
        for ((a, m), ok) in acc.iter_mut().zip(maps).zip(ok.iter_mut()) {
            for (x, y) in a.values.iter_mut().zip(&m.values) {
                *x += y;
            }
            if m.status == super::MapStatus::Ok {
                *ok = true;
                a.status = m.status;
            }
        }
    }
    for a in &mut acc {
        a.values.iter_mut().for_each(|v| *v /= n);
    }
    acc
}

/// Per image, the projection `[B, h, w]` of the terms `[B, C, h, w]` (one C-vector per
/// location) on their first principal component: NaN set to 0, the locations centred,
/// the projection on the first right singular vector. The sign of a singular vector is
/// arbitrary (LAPACK's choice in pytorch-grad-cam); here it is the one whose projection
/// agrees with the plain channel sum of the centred terms (so Eigen-smoothed Grad-CAM
/// points the way Grad-CAM does).
pub fn first_component(terms: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = terms.size4().context("terms must be [B, C, h, w]")?;
    let t = terms
        .detach()
        .to_kind(Kind::Double)
        .nan_to_num(0.0, 0.0, 0.0);
    let mut out = Vec::with_capacity(b as usize);
    for i in 0..b {
        let x = t.get(i).reshape([c, h * w]).tr();
        let x = &x - x.mean_dim([0i64].as_slice(), true, None);
        // torch.svd gives V (not Vᵀ): the first right singular vector is its column 0.
        let (_, _, v) = x.svd(true, true);
        let p = x.matmul(&v.select(1, 0));
        let agree = (&p * x.sum_dim_intlist([1i64].as_slice(), false, None))
            .sum(Kind::Double)
            .double_value(&[]);
        let p = if agree < 0.0 { -p } else { p };
        out.push(p.reshape([h, w]));
    }
    Ok(Tensor::stack(&out, 0).to_kind(terms.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::MapStatus;

    #[test]
    fn flips_are_undone_and_means_are_not_rescaled() {
        let m = SaliencyMap {
            channels: 1,
            height: 2,
            width: 3,
            values: vec![0.0, 0.5, 1.0, 0.1, 0.2, 0.3],
            status: MapStatus::Ok,
        };
        let a = Augmentation {
            flip: true,
            factor: 1.1,
        };
        assert_eq!(
            a.deaugment(m.clone()).values,
            [1.0, 0.5, 0.0, 0.3, 0.2, 0.1]
        );
        let x = Tensor::arange(6, (Kind::Float, tch::Device::Cpu)).view([1, 1, 2, 3]);
        let y: Vec<f32> = Vec::try_from(a.augment(&x).flatten(0, -1)).unwrap();
        let expected = [2.2f32, 1.1, 0.0, 5.5, 4.4, 3.3];
        assert!(
            y.iter().zip(expected).all(|(p, q)| (p - q).abs() < 1e-6),
            "{y:?}"
        );
        let blank = SaliencyMap::blank(1, 2, 3, MapStatus::Zero);
        let mean = mean_maps(vec![vec![m.clone()], vec![blank]]);
        assert_eq!(mean[0].status, MapStatus::Ok);
        assert!((mean[0].values[2] - 0.5).abs() < 1e-7);
        assert_eq!(AUGMENTATIONS.iter().filter(|a| a.is_identity()).count(), 1);
    }

    /// Rank-one terms project onto their own spatial pattern (up to centring), with the
    /// sign of the channel sum.
    #[test]
    fn the_first_component_of_rank_one_terms_is_their_pattern() {
        let pattern = Tensor::from_slice(&[0.0f64, 1.0, 3.0, 2.0]).view([1, 1, 2, 2]);
        let channels = Tensor::from_slice(&[1.0f64, -0.5, 2.0]).view([1, 3, 1, 1]);
        let p = first_component(&(&pattern * &channels)).unwrap();
        let centred = &pattern.view([4]) - 1.5;
        let norm = (1.0f64 + 0.25 + 4.0).sqrt();
        let expected = (centred * norm).view([1, 2, 2]);
        assert!(
            p.allclose(&expected, 1e-9, 1e-9, false),
            "{p} vs {expected}"
        );
    }
}
