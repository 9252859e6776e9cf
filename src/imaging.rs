//! Image helpers shared by the explain, project and report layers: shrinking
//! images to thumbnails, the JET colormap and 50/50 overlays of saliency maps, JPEG
//! output. Pixels in, pixels out: this is the base layer, so reading files is left
//! to `data::decode` (a thumbnail of a file is `shrink(&decode_rgb(path)?, side)`),
//! which keeps one set of size limits and transparency rules for every reader.

use crate::atomic::write_atomic_with;
use anyhow::{Context, Result};
use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use std::path::Path;

/// Shrinks an image so its longer side is at most `max_side` (never enlarged),
/// keeping the aspect ratio (Lanczos-free triangle filter: fast and without ringing
/// on emoji edges).
pub fn shrink(image: &RgbImage, max_side: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let side = w.max(h);
    if side <= max_side {
        return image.clone();
    }
    let scale = max_side as f64 / side as f64;
    let nw = ((w as f64 * scale).round() as u32).max(1);
    let nh = ((h as f64 * scale).round() as u32).max(1);
    image::imageops::resize(image, nw, nh, FilterType::Triangle)
}

/// Fits an image into a `side`×`side` square on white (letterboxed, centred).
pub fn square(image: &RgbImage, side: u32) -> RgbImage {
    let small = shrink(image, side);
    let mut out = RgbImage::from_pixel(side, side, Rgb([255, 255, 255]));
    let x = (side - small.width()) / 2;
    let y = (side - small.height()) / 2;
    image::imageops::overlay(&mut out, &small, x as i64, y as i64);
    out
}

/// The JET colormap (blue → cyan → yellow → red) at `v` ∈ [0, 1], as OpenCV's
/// `COLORMAP_JET` that pytorch-grad-cam uses; values outside are clamped, NaN is
/// drawn as the colour of 0.
pub fn jet(v: f32) -> [u8; 3] {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    let channel =
        |centre: f32| ((1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// Renders a map with values in [0, 1] (row-major, `width`×`height`) in JET.
pub fn jet_image(map: &[f32], width: u32, height: u32) -> RgbImage {
    assert_eq!(
        map.len(),
        (width * height) as usize,
        "map size does not match {width}×{height}"
    );
    RgbImage::from_fn(width, height, |x, y| {
        Rgb(jet(map[(y * width + x) as usize]))
    })
}

/// Renders a map with values in [0, 1] as grey levels (guided backprop displays).
pub fn grey_image(map: &[f32], width: u32, height: u32) -> RgbImage {
    assert_eq!(
        map.len(),
        (width * height) as usize,
        "map size does not match {width}×{height}"
    );
    RgbImage::from_fn(width, height, |x, y| {
        let v = map[(y * width + x) as usize];
        let g = if v.is_nan() {
            0
        } else {
            (v.clamp(0.0, 1.0) * 255.0).round() as u8
        };
        Rgb([g, g, g])
    })
}

/// Blends `top` over `base` with weight `alpha` for `top` (0.5: the 50/50 overlay
/// convention of the saliency literature). Both images must have the same size.
pub fn blend(base: &RgbImage, top: &RgbImage, alpha: f32) -> RgbImage {
    assert_eq!(
        base.dimensions(),
        top.dimensions(),
        "blend needs images of the same size"
    );
    RgbImage::from_fn(base.width(), base.height(), |x, y| {
        let (b, t) = (base.get_pixel(x, y), top.get_pixel(x, y));
        Rgb(std::array::from_fn(|c| {
            (b[c] as f32 * (1.0 - alpha) + t[c] as f32 * alpha).round() as u8
        }))
    })
}

/// Writes an RGB image as a JPEG (quality 85), atomically: thumbnails and contact
/// sheets of photos are 5–10× smaller than PNG.
pub fn write_jpeg(path: &Path, image: &RgbImage) -> Result<()> {
    write_atomic_with(path, |w| {
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(w, 85);
        enc.encode_image(image)
            .with_context(|| format!("encoding JPEG {}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_runs_from_blue_to_red() {
        assert_eq!(jet(0.0), [0, 0, 128]);
        assert_eq!(jet(0.5), [128, 255, 128]);
        assert_eq!(jet(1.0), [128, 0, 0]);
        assert_eq!(jet(f32::NAN), jet(0.0));
        assert_eq!(jet(7.0), jet(1.0));
    }

    #[test]
    fn shrink_keeps_aspect_and_never_enlarges() {
        let img = RgbImage::new(400, 100);
        assert_eq!(shrink(&img, 100).dimensions(), (100, 25));
        assert_eq!(shrink(&img, 1000).dimensions(), (400, 100));
        assert_eq!(square(&img, 64).dimensions(), (64, 64));
    }

    #[test]
    fn blend_is_a_weighted_mean() {
        let a = RgbImage::from_pixel(2, 2, Rgb([0, 100, 200]));
        let b = RgbImage::from_pixel(2, 2, Rgb([200, 100, 0]));
        assert_eq!(blend(&a, &b, 0.5).get_pixel(1, 1), &Rgb([100, 100, 100]));
        assert_eq!(blend(&a, &b, 0.0).get_pixel(0, 0), &Rgb([0, 100, 200]));
    }
}
