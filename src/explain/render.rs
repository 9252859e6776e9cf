//! PNGs of saliency maps: the heat map alone (JET), the JET overlay blended 50/50 with
//! the image, and gradient images in the reference's display normalisation. Small network
//! inputs (64² emoji) are enlarged for display so the maps can be seen; the arrays keep
//! the input's size. A degenerate map is drawn as a flat grey blank (the page labels it),
//! never as stretched noise; NaN cannot reach a PNG ([`SaliencyMap`] holds none).

use super::map::{resize_bilinear, MapStatus, SaliencyMap};
use crate::atomic::write_png;
use crate::imaging::{blend, grey_image, jet_image};
use anyhow::Result;
use image::imageops::FilterType;
use image::{DynamicImage, Rgb, RgbImage};
use std::path::Path;

/// Inputs whose longer side is below this are enlarged by an integer factor for display.
pub const DISPLAY_SIDE: u32 = 224;

/// Grey of a blank (degenerate) map.
const BLANK: Rgb<u8> = Rgb([200, 200, 200]);

/// Display size of a `width`×`height` input: enlarged by the integer factor that brings
/// its longer side to at least [`DISPLAY_SIDE`].
pub fn display_size(width: u32, height: u32) -> (u32, u32) {
    let side = width.max(height).max(1);
    let factor = DISPLAY_SIDE.div_ceil(side).max(1);
    (width * factor, height * factor)
}

/// The image at display size.
pub fn display_image(image: &RgbImage) -> RgbImage {
    let (w, h) = display_size(image.width(), image.height());
    if (w, h) == image.dimensions() {
        return image.clone();
    }
    image::imageops::resize(image, w, h, FilterType::CatmullRom)
}

/// One channel of a map at display size (bilinear), values in [0, 1].
fn display_channel(map: &SaliencyMap, channel: usize) -> Result<(Vec<f32>, u32, u32)> {
    let (w, h) = display_size(map.width as u32, map.height as u32);
    let plane = map.height * map.width;
    let values = &map.values[channel * plane..(channel + 1) * plane];
    if (w as usize, h as usize) == (map.width, map.height) {
        return Ok((values.to_vec(), w, h));
    }
    let v = resize_bilinear(
        values,
        map.height as i64,
        map.width as i64,
        h as i64,
        w as i64,
    )?;
    Ok((v.into_iter().map(|x| x.clamp(0.0, 1.0)).collect(), w, h))
}

/// The heat map alone: JET for one-channel maps, RGB for gradient images; a blank for
/// degenerate maps.
pub fn heat(map: &SaliencyMap) -> Result<RgbImage> {
    let (w, h) = display_size(map.width as u32, map.height as u32);
    if map.status != MapStatus::Ok {
        return Ok(RgbImage::from_pixel(w, h, BLANK));
    }
    if map.channels == 1 {
        let (v, w, h) = display_channel(map, 0)?;
        return Ok(jet_image(&v, w, h));
    }
    let planes: Vec<Vec<f32>> = (0..map.channels.min(3))
        .map(|c| Ok(display_channel(map, c)?.0))
        .collect::<Result<_>>()?;
    if planes.len() < 3 {
        return Ok(grey_image(&planes[0], w, h));
    }
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        Rgb(std::array::from_fn(|c| {
            (planes[c][i].clamp(0.0, 1.0) * 255.0).round() as u8
        }))
    }))
}

/// The JET heat map blended 50/50 with the image (the image, greyed, for a degenerate map).
pub fn overlay(map: &SaliencyMap, image: &RgbImage) -> Result<RgbImage> {
    let base = display_image(image);
    let top = heat(map)?;
    let top = if top.dimensions() == base.dimensions() {
        top
    } else {
        image::imageops::resize(&top, base.width(), base.height(), FilterType::Triangle)
    };
    Ok(blend(&base, &top, 0.5))
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
    fn small_inputs_are_enlarged_and_blanks_are_flat() {
        assert_eq!(display_size(64, 64), (256, 256));
        assert_eq!(display_size(224, 224), (224, 224));
        assert_eq!(display_size(300, 100), (300, 100));
        let blank = SaliencyMap::blank(1, 4, 4, MapStatus::Zero);
        let h = heat(&blank).unwrap();
        assert_eq!(h.dimensions(), (224, 224));
        assert!(h.pixels().all(|p| *p == BLANK));
        let map = SaliencyMap {
            channels: 1,
            height: 2,
            width: 2,
            values: vec![0.0, 0.0, 0.0, 1.0],
            status: MapStatus::Ok,
        };
        let h = heat(&map).unwrap();
        assert_eq!(*h.get_pixel(0, 0), Rgb(crate::imaging::jet(0.0)));
        assert_eq!(*h.get_pixel(223, 223), Rgb(crate::imaging::jet(1.0)));
        let img = RgbImage::from_pixel(2, 2, Rgb([255, 255, 255]));
        assert_eq!(overlay(&map, &img).unwrap().dimensions(), (224, 224));
    }
}
