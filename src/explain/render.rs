//! PNGs of saliency maps: the heat map alone (JET), the JET overlay blended 50/50 with
//! the image, and gradient images in the reference's display normalisation, all at the
//! network input's size, as pytorch-grad-cam writes them. Pages enlarge small inputs
//! (64² emoji) in the browser (`assets/site.css`, `.saliency img`), which draws what a
//! bilinear enlargement in the file would, at a sixteenth of the bytes for 64² inputs
//! (the explanations had been two thirds of the demo's site). A degenerate map is drawn
//! as a flat grey blank (the page labels it), never as stretched noise; NaN cannot
//! reach a PNG ([`SaliencyMap`] holds none).

use super::map::{MapStatus, SaliencyMap};
use crate::atomic::write_png;
use crate::imaging::{blend, grey_image, jet_image};
use anyhow::Result;
use image::imageops::FilterType;
use image::{DynamicImage, Rgb, RgbImage};
use std::path::Path;

/// Grey of a blank (degenerate) map.
const BLANK: Rgb<u8> = Rgb([200, 200, 200]);

/// One channel of a map, values clamped to [0, 1].
fn channel(map: &SaliencyMap, channel: usize) -> Vec<f32> {
    let plane = map.height * map.width;
    map.values[channel * plane..(channel + 1) * plane]
        .iter()
        .map(|x| x.clamp(0.0, 1.0))
        .collect()
}

/// The heat map alone: JET for one-channel maps, RGB for gradient images; a blank for
/// degenerate maps.
pub fn heat(map: &SaliencyMap) -> Result<RgbImage> {
    let (w, h) = (map.width as u32, map.height as u32);
    if map.status != MapStatus::Ok {
        return Ok(RgbImage::from_pixel(w, h, BLANK));
    }
    if map.channels == 1 {
        return Ok(jet_image(&channel(map, 0), w, h));
    }
    let planes: Vec<Vec<f32>> = (0..map.channels.min(3)).map(|c| channel(map, c)).collect();
    if planes.len() < 3 {
        return Ok(grey_image(&planes[0], w, h));
    }
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        Rgb(std::array::from_fn(|c| {
            (planes[c][i] * 255.0).round() as u8
        }))
    }))
}

/// The JET heat map blended 50/50 with the image (the image, greyed, for a degenerate
/// map); a map of another size than the image is resized to it.
pub fn overlay(map: &SaliencyMap, image: &RgbImage) -> Result<RgbImage> {
    let top = heat(map)?;
    let top = if top.dimensions() == image.dimensions() {
        top
    } else {
        image::imageops::resize(&top, image.width(), image.height(), FilterType::Triangle)
    };
    Ok(blend(image, &top, 0.5))
}

/// Writes `<stem>.png` (heat map) and, for one-channel maps, `<stem>-overlay.png` into
/// `dir`; returns the file names written (heat first).
pub fn write_map_pngs(
    dir: &Path,
    stem: &str,
    map: &SaliencyMap,
    image: &RgbImage,
) -> Result<Vec<String>> {
    let mut names = vec![format!("{stem}.png")];
    write_png(&dir.join(&names[0]), &DynamicImage::ImageRgb8(heat(map)?))?;
    if map.channels == 1 {
        names.push(format!("{stem}-overlay.png"));
        write_png(
            &dir.join(&names[1]),
            &DynamicImage::ImageRgb8(overlay(map, image)?),
        )?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_the_input_size_and_blanks_are_flat() {
        let blank = SaliencyMap::blank(1, 4, 6, MapStatus::Zero);
        let h = heat(&blank).unwrap();
        assert_eq!(h.dimensions(), (6, 4));
        assert!(h.pixels().all(|p| *p == BLANK));
        let map = SaliencyMap {
            channels: 1,
            height: 2,
            width: 2,
            values: vec![0.0, 0.0, 0.0, 1.0],
            status: MapStatus::Ok,
        };
        let h = heat(&map).unwrap();
        assert_eq!(h.dimensions(), (2, 2));
        assert_eq!(*h.get_pixel(0, 0), Rgb(crate::imaging::jet(0.0)));
        assert_eq!(*h.get_pixel(1, 1), Rgb(crate::imaging::jet(1.0)));
        let white = RgbImage::from_pixel(2, 2, Rgb([255, 255, 255]));
        let o = overlay(&map, &white).unwrap();
        assert_eq!(o.dimensions(), (2, 2));
        let hot = crate::imaging::jet(1.0);
        let half = |c: u8| ((c as f32 + 255.0) / 2.0).round() as i32;
        assert!((0..3).all(|c| (o.get_pixel(1, 1)[c] as i32 - half(hot[c])).abs() <= 1));
        // A map of another size is resized onto the image.
        let big = RgbImage::from_pixel(8, 8, Rgb([0, 0, 0]));
        assert_eq!(overlay(&map, &big).unwrap().dimensions(), (8, 8));
    }
}
