//! Image transforms of the reference experiments: train = resize, random crop,
//! random horizontal flip; test = resize, centre crop; then ImageNet normalisation
//! into a CHW float buffer.

use super::rng::Rng;
use image::imageops::{self, FilterType};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// ImageNet channel means (RGB), as torchvision normalises.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One transform pipeline: resize to `resize`², crop `crop`² (random or central),
/// optionally flip left-right with probability ½.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    pub resize: u32,
    pub crop: u32,
    pub random_crop: bool,
    pub random_flip: bool,
}

impl Transform {
    /// Training transform: resize, random crop, random flip when `augment`; otherwise
    /// the test transform (so "augmentation off" trains on exactly what is evaluated).
    pub fn train(resize: u32, crop: u32, augment: bool) -> Self {
        Transform {
            resize,
            crop,
            random_crop: augment,
            random_flip: augment,
        }
    }

    /// Test transform: resize then centre crop.
    pub fn test(resize: u32, crop: u32) -> Self {
        Transform {
            resize,
            crop,
            random_crop: false,
            random_flip: false,
        }
    }

    /// Number of floats one transformed image occupies (3 × crop²).
    pub fn output_len(&self) -> usize {
        3 * (self.crop as usize) * (self.crop as usize)
    }

    /// Resizes, crops and flips an image; `rng` is only drawn from for random steps.
    pub fn apply(&self, image: &RgbImage, rng: &mut Rng) -> RgbImage {
        assert!(
            self.crop <= self.resize,
            "crop {} larger than resize {}",
            self.crop,
            self.resize
        );
        // Bilinear with antialiasing when shrinking, as torchvision's Resize.
        let resized = if image.dimensions() == (self.resize, self.resize) {
            image.clone()
        } else {
            imageops::resize(image, self.resize, self.resize, FilterType::Triangle)
        };
        let slack = self.resize - self.crop;
        let (x, y) = if self.random_crop {
            (
                rng.below(slack as u64 + 1) as u32,
                rng.below(slack as u64 + 1) as u32,
            )
        } else {
            // torchvision's CenterCrop: Python's round, which rounds halves to even.
            let off = (slack as f64 / 2.0).round_ties_even() as u32;
            (off, off)
        };
        let mut out = if slack == 0 {
            resized
        } else {
            imageops::crop_imm(&resized, x, y, self.crop, self.crop).to_image()
        };
        if self.random_flip && rng.chance(0.5) {
            imageops::flip_horizontal_in_place(&mut out);
        }
        out
    }
}

/// Writes an RGB image as ImageNet-normalised CHW floats into `out` (len 3·w·h).
pub fn normalise_into(image: &RgbImage, out: &mut [f32]) {
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    assert_eq!(out.len(), 3 * plane, "output buffer size");
    for (i, px) in image.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / (w - 1)) as u8, (y * 255 / (h - 1)) as u8, 128])
        })
    }

    #[test]
    fn output_shapes_follow_the_crop() {
        let img = gradient(50, 30);
        let mut rng = Rng::new(1);
        for t in [
            Transform::train(72, 64, true),
            Transform::test(72, 64),
            Transform::train(64, 64, false),
        ] {
            let out = t.apply(&img, &mut rng);
            assert_eq!(out.dimensions(), (64, 64));
            let mut buf = vec![0f32; t.output_len()];
            normalise_into(&out, &mut buf);
        }
    }

    #[test]
    fn normalisation_maps_black_and_white_to_known_values() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(1, 0, Rgb([255, 255, 255]));
        let mut buf = vec![0f32; 6];
        normalise_into(&img, &mut buf);
        for c in 0..3 {
            let black = -IMAGENET_MEAN[c] / IMAGENET_STD[c];
            let white = (1.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
            assert!((buf[c * 2] - black).abs() < 1e-6);
            assert!((buf[c * 2 + 1] - white).abs() < 1e-6);
        }
        // The extreme values any image can take: about [-2.12, 2.64].
        assert!(buf.iter().all(|v| (-2.2..2.7).contains(v)));
    }

    #[test]
    fn centre_crop_is_centred_and_test_transform_is_deterministic() {
        // 10×10 image with a distinct pixel at (5, 5); crop 4 from resize 10 → offset 3.
        let mut img = RgbImage::from_pixel(10, 10, Rgb([0, 0, 0]));
        img.put_pixel(5, 5, Rgb([255, 0, 0]));
        let t = Transform::test(10, 4);
        let a = t.apply(&img, &mut Rng::new(1));
        let b = t.apply(&img, &mut Rng::new(2));
        assert_eq!(a, b);
        assert_eq!(a.get_pixel(2, 2).0, [255, 0, 0]);
    }

    #[test]
    fn random_crop_and_flip_vary_with_the_generator_and_stay_inside() {
        let img = gradient(40, 40);
        let t = Transform::train(40, 32, true);
        let outs: Vec<RgbImage> = (0..20).map(|s| t.apply(&img, &mut Rng::new(s))).collect();
        assert!(
            outs.iter().any(|o| o != &outs[0]),
            "random transform never varied"
        );
        // Flipped outputs have red decreasing left to right.
        let flipped = outs
            .iter()
            .filter(|o| o.get_pixel(0, 0)[0] > o.get_pixel(31, 0)[0])
            .count();
        assert!(
            flipped > 0 && flipped < 20,
            "flip probability looks wrong: {flipped}/20"
        );
        // Same generator seed, same output.
        assert_eq!(t.apply(&img, &mut Rng::new(5)), outs[5]);
    }
}
