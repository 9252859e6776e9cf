//! A saliency map scaled to [0, 1], with a status saying whether it carries information.
//!
//! Degenerate maps are kept apart from real ones: a map whose score has no gradient (a
//! dead target, e.g. an image compared with itself), whose values are all zero after the
//! ReLU, or all equal, is reported as such and rendered as a labelled blank — never
//! min-max stretched into noise. Non-finite values never leave this module.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Below this relative size a map's maximum counts as zero: `max ≤ ZERO_TOLERANCE · reference`,
/// where the reference is the magnitude of the terms the map was summed from (what float
/// cancellation can leave behind).
pub const ZERO_TOLERANCE: f64 = 1e-6;
/// A map whose range is at most this share of its maximum is constant.
pub const CONSTANT_TOLERANCE: f64 = 1e-4;

/// Whether a map carries information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapStatus {
    /// A real map.
    Ok,
    /// Every value equal: nothing to show.
    Constant,
    /// All zero: a dead target or a zero gradient.
    Zero,
    /// NaN or infinite values were computed (the map is blank).
    NonFinite,
}

impl MapStatus {
    /// The name used in JSON (`ok`, `constant`, `zero`, `non_finite`).
    pub fn name(self) -> &'static str {
        match self {
            MapStatus::Ok => "ok",
            MapStatus::Constant => "constant",
            MapStatus::Zero => "zero",
            MapStatus::NonFinite => "non_finite",
        }
    }

    /// A sentence for the page shown instead of a degenerate map.
    pub fn describe(self) -> &'static str {
        match self {
            MapStatus::Ok => "",
            MapStatus::Constant => "constant map: no region matters more than another",
            MapStatus::Zero => "all-zero map: nothing raises the score (a dead target, a zero gradient, or every location cut by the ReLU)",
            MapStatus::NonFinite => "not computable: NaN or infinite values",
        }
    }
}

/// A map of `channels` × `height` × `width` values in [0, 1] (row-major, channel-major),
/// all zero unless the status is [`MapStatus::Ok`].
#[derive(Debug, Clone, PartialEq)]
pub struct SaliencyMap {
    /// 1 for heat maps, 3 for gradient images (guided backprop displays).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels·height·width` values in [0, 1], never NaN.
    pub values: Vec<f32>,
    /// Whether the map carries information.
    pub status: MapStatus,
}

impl SaliencyMap {
    /// A blank (all-zero) map with a degenerate status.
    pub fn blank(channels: usize, height: usize, width: usize, status: MapStatus) -> SaliencyMap {
        SaliencyMap {
            channels,
            height,
            width,
            values: vec![0.0; channels * height * width],
            status,
        }
    }

    /// The map as a `[channels, height, width]` float tensor.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.values).view([
            self.channels as i64,
            self.height as i64,
            self.width as i64,
        ])
    }

    /// (row, column) of the largest value of a one-channel map (first on ties).
    pub fn argmax(&self) -> (usize, usize) {
        let i =
            self.values.iter().enumerate().fold(
                0,
                |best, (i, &v)| if v > self.values[best] { i } else { best },
            );
        (i / self.width, i % self.width)
    }
}

/// Status of raw values: non-finite, zero (max ≤ tolerance of `reference`), constant, ok.
/// `nonneg` maps are judged by their maximum, others by their largest magnitude.
pub fn judge(values: &[f32], reference: f64) -> MapStatus {
    if values.iter().any(|v| !v.is_finite()) {
        return MapStatus::NonFinite;
    }
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let magnitude = hi.abs().max(lo.abs()) as f64;
    if values.is_empty()
        || magnitude <= f32::MIN_POSITIVE as f64
        || magnitude <= ZERO_TOLERANCE * reference
    {
        return MapStatus::Zero;
    }
    if ((hi - lo) as f64) <= CONSTANT_TOLERANCE * magnitude {
        return MapStatus::Constant;
    }
    MapStatus::Ok
}

/// Turns raw non-negative maps `[B, h, w]` (after the ReLU) into [0, 1] maps of the input's
/// size `height`×`width`: pytorch-grad-cam's `scale_cam_image` — `x − min`, divided by
/// `max + 1e-7` of the shifted map — then a bilinear resize (OpenCV's `INTER_LINEAR` =
/// half-pixel centres, `align_corners = false`). `reference[b]` is the magnitude of the
/// terms image b's map was summed from ([`judge`]); `dead[b]` forces [`MapStatus::Zero`]
/// (the score had no gradient, so any values are rounding noise).
pub fn scale_maps(
    raw: &Tensor,
    reference: &[f64],
    dead: &[bool],
    height: i64,
    width: i64,
) -> Result<Vec<SaliencyMap>> {
    let raw = raw.detach().to_device(Device::Cpu).to_kind(Kind::Float);
    let (b, h, w) = raw.size3().context("raw maps must be [B, h, w]")?;
    (0..b)
        .map(|i| {
            let values: Vec<f32> =
                Vec::try_from(raw.get(i).flatten(0, -1)).context("reading a raw map")?;
            let mut status = judge(&values, reference.get(i as usize).copied().unwrap_or(0.0));
            if dead.get(i as usize).copied().unwrap_or(false) && status != MapStatus::NonFinite {
                status = MapStatus::Zero;
            }
            if status != MapStatus::Ok {
                return Ok(SaliencyMap::blank(
                    1,
                    height as usize,
                    width as usize,
                    status,
                ));
            }
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let shifted: Vec<f32> = values.iter().map(|v| v - lo).collect();
            let hi = shifted.iter().copied().fold(0.0, f32::max);
            let scaled: Vec<f32> = shifted.iter().map(|v| v / (hi + 1e-7)).collect();
            let values = if (h, w) == (height, width) {
                scaled
            } else {
                resize_bilinear(&scaled, h, w, height, width)?
            };
            let values = values.into_iter().map(|v| v.clamp(0.0, 1.0)).collect();
            Ok(SaliencyMap {
                channels: 1,
                height: height as usize,
                width: width as usize,
                values,
                status,
            })
        })
        .collect()
}

/// Bilinear resize of one `h`×`w` map to `height`×`width` (half-pixel centres).
pub fn resize_bilinear(
    values: &[f32],
    h: i64,
    w: i64,
    height: i64,
    width: i64,
) -> Result<Vec<f32>> {
    let t = Tensor::from_slice(values).view([1, 1, h, w]);
    Vec::try_from(
        t.upsample_bilinear2d([height, width], false, None, None)
            .flatten(0, -1),
    )
    .with_context(|| format!("reading a map resized from {h}×{w} to {height}×{width}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_follows_pytorch_grad_cam() {
        let raw = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 5.0]).view([1, 2, 2]);
        let m = &scale_maps(&raw, &[0.0], &[false], 2, 2).unwrap()[0];
        assert_eq!(m.status, MapStatus::Ok);
        let expected = [0.0, 1.0 / 4.0, 2.0 / 4.0, 4.0 / 4.0];
        for (a, b) in m.values.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{:?}", m.values);
        }
        // Upsampled 2×2 → 4×4 with half-pixel centres: corners keep the corner values.
        let m = &scale_maps(&raw, &[0.0], &[false], 4, 4).unwrap()[0];
        assert_eq!((m.height, m.width, m.values.len()), (4, 4, 16));
        assert!(m.values[0].abs() < 1e-6 && (m.values[15] - 1.0).abs() < 1e-6);
        assert!(m.values.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn degenerate_maps_are_labelled_blanks() {
        let raw = Tensor::from_slice(&[
            0.0f32,
            0.0,
            0.0,
            0.0,
            2.0,
            2.0,
            2.0,
            2.0,
            1.0,
            f32::NAN,
            0.0,
            0.0,
            1e-9,
            0.0,
            0.0,
            0.0,
        ])
        .view([4, 2, 2]);
        let maps = scale_maps(&raw, &[1.0, 1.0, 1.0, 1.0], &[false; 4], 2, 2).unwrap();
        let status: Vec<MapStatus> = maps.iter().map(|m| m.status).collect();
        assert_eq!(
            status,
            [
                MapStatus::Zero,
                MapStatus::Constant,
                MapStatus::NonFinite,
                MapStatus::Zero
            ]
        );
        assert!(maps.iter().all(|m| m.values.iter().all(|&v| v == 0.0)));
        // A dead target is zero whatever its rounding noise looks like.
        let noise = Tensor::from_slice(&[1e-9f32, 3e-9, 0.0, 2e-9]).view([1, 2, 2]);
        assert_eq!(
            scale_maps(&noise, &[0.0], &[false], 2, 2).unwrap()[0].status,
            MapStatus::Ok
        );
        assert_eq!(
            scale_maps(&noise, &[0.0], &[true], 2, 2).unwrap()[0].status,
            MapStatus::Zero
        );
    }
}
