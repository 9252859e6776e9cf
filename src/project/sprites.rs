//! Hover thumbnails as tiled sprite sheets: `<stem>-<k>.jpg`, each a grid of square
//! cells in point order, described by `<stem>.json` ([`SpriteInfo`]).
//!
//! A map of 100 000 points needs 100 000 thumbnails; one sheet holding them all would
//! pass TensorBoard's 8192 px limit and make the page wait for megabytes it may never
//! show. The sheets are therefore small (at most [`SHEET_SIDE`] px a side) and the map
//! page asks for a sheet only when a point on it is hovered or selected.

use crate::atomic::write_json;
use crate::imaging::write_jpeg;
pub use crate::run::projections::SpriteInfo;
use anyhow::Result;
use image::{Rgb, RgbImage};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub use crate::run::projections::SHEET_SIDE;
/// TensorBoard's projector refuses sprite images wider or taller than this.
pub const TENSORBOARD_SIDE: u32 = 8192;

/// Thumbnails of `paths` (at most `side` pixels), decoded in parallel; an image that
/// cannot be read becomes a grey square, so a moved dataset still gives a map.
pub fn load_thumbnails(paths: &[PathBuf], side: u32) -> (Vec<RgbImage>, usize) {
    fill_missing(decode_thumbnails(paths, side), side)
}

/// Thumbnails of `paths` (at most `side` pixels), decoded in parallel; `None` for an
/// image that cannot be read.
pub fn decode_thumbnails(paths: &[PathBuf], side: u32) -> Vec<Option<RgbImage>> {
    paths
        .par_iter()
        .map(|p| {
            let image = crate::data::decode::decode_rgb(p).ok()?;
            Some(crate::imaging::shrink(&image, side))
        })
        .collect()
}

/// `thumbs` with each missing one a grey `side`-px square, and how many were missing.
pub fn fill_missing(thumbs: Vec<Option<RgbImage>>, side: u32) -> (Vec<RgbImage>, usize) {
    let missing = thumbs.iter().filter(|t| t.is_none()).count();
    (
        thumbs
            .into_iter()
            .map(|t| t.unwrap_or_else(|| RgbImage::from_pixel(side, side, Rgb([200, 200, 200]))))
            .collect(),
        missing,
    )
}

/// One grid of `thumbs`, each letterboxed into a square cell of `cell` px, `columns`
/// cells a row, white where no thumbnail falls.
pub fn grid(thumbs: &[RgbImage], cell: u32, columns: u32, rows: u32) -> RgbImage {
    let mut sheet = RgbImage::from_pixel(columns * cell, rows * cell, Rgb([255, 255, 255]));
    for (i, t) in thumbs.iter().enumerate() {
        let square = crate::imaging::square(t, cell);
        let (x, y) = ((i as u32 % columns) * cell, (i as u32 / columns) * cell);
        image::imageops::overlay(&mut sheet, &square, x as i64, y as i64);
    }
    sheet
}

/// The sheets of `info`, in order.
pub fn sheets(thumbs: &[RgbImage], info: &SpriteInfo) -> Vec<RgbImage> {
    thumbs
        .chunks(info.per_sheet())
        .enumerate()
        .map(|(k, chunk)| grid(chunk, info.cell, info.columns, info.sheet_rows(k as u32)))
        .collect()
}

/// Writes the sheets of `thumbs` and `<stem>.json` into `dir`; returns their layout.
pub fn write_sprites(dir: &Path, stem: &str, thumbs: &[RgbImage]) -> Result<SpriteInfo> {
    write_sprites_as(dir, SpriteInfo::for_points(stem, thumbs.len()), thumbs)
}

/// [`write_sprites`] in the layout `info` (one cell per thumbnail).
pub fn write_sprites_as(dir: &Path, info: SpriteInfo, thumbs: &[RgbImage]) -> Result<SpriteInfo> {
    let sheets = sheets(thumbs, &info);
    sheets
        .par_iter()
        .enumerate()
        .try_for_each(|(k, sheet)| write_jpeg(&dir.join(info.sheet_name(k as u32)), sheet))?;
    write_json(&dir.join(format!("{}.json", info.stem)), &info)?;
    Ok(info)
}

/// The cell side TensorBoard's single sprite can afford for `count` points: at most
/// `preferred`, and small enough that `⌈√count⌉` cells fit in [`TENSORBOARD_SIDE`].
pub fn tensorboard_cell(count: usize, preferred: u32) -> u32 {
    let columns = ((count as f64).sqrt().ceil() as u32).max(1);
    preferred.min(TENSORBOARD_SIDE / columns).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheets_stay_small_and_cover_every_point() {
        for n in [1usize, 5, 999, 4000, 10_000, 70_000, 100_000] {
            let info = SpriteInfo::for_points("sprite", n);
            assert!(info.columns * info.cell <= SHEET_SIDE, "{n}: {info:?}");
            assert!(info.rows * info.cell <= SHEET_SIDE, "{n}: {info:?}");
            assert!(
                info.sheets as usize * info.per_sheet() >= n,
                "{n}: {info:?}"
            );
            assert!(
                (info.sheets as usize - 1) * info.per_sheet() < n,
                "{n}: {info:?}"
            );
            let (k, c, r) = info.locate(n - 1);
            assert!(k < info.sheets && c < info.columns && r < info.sheet_rows(k));
        }
        let info = SpriteInfo::for_points("sprite", 100_000);
        assert_eq!(
            (info.cell, info.columns, info.rows, info.sheets),
            (32, 64, 64, 25)
        );
        assert_eq!(info.locate(4096), (1, 0, 0));
        assert_eq!(info.locate(4096 + 65), (1, 1, 1));
        assert_eq!(info.sheet_rows(24), (100_000u32 - 24 * 4096).div_ceil(64));
        assert_eq!(tensorboard_cell(100_000, 32), 25);
        assert_eq!(tensorboard_cell(100, 32), 32);
        assert!(317 * tensorboard_cell(100_000, 32) <= TENSORBOARD_SIDE);
    }

    #[test]
    fn sprite_cells_follow_point_order() {
        let thumbs: Vec<RgbImage> = (0..5u8)
            .map(|i| RgbImage::from_pixel(10, 10, Rgb([i * 50, 0, 0])))
            .collect();
        let info = SpriteInfo::for_points("s", 5);
        assert_eq!((info.columns, info.rows, info.sheets), (3, 2, 1));
        let sheet = &sheets(&thumbs, &info)[0];
        assert_eq!(sheet.dimensions(), (3 * 64, 2 * 64));
        // Point 4: column 1, row 1; the thumbnail is centred in its cell.
        assert_eq!(sheet.get_pixel(64 + 32, 64 + 32), &Rgb([200, 0, 0]));
        let (thumbs, missing) = load_thumbnails(&[PathBuf::from("no/such.png")], 32);
        assert_eq!((missing, thumbs[0].dimensions()), (1, (32, 32)));
    }

    #[test]
    fn points_past_one_sheet_go_to_the_next() {
        // 4 100 points of 32 px: 64 × 64 cells a sheet, so point 4 096 starts sheet 1.
        let thumbs: Vec<RgbImage> = (0..4100)
            .map(|i| RgbImage::from_pixel(4, 4, Rgb([if i >= 4096 { 250 } else { 0 }, 0, 0])))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let info = write_sprites(dir.path(), "sprite", &thumbs).unwrap();
        assert_eq!(info.sheets, 2);
        let second = image::open(dir.path().join("sprite-1.jpg"))
            .unwrap()
            .to_rgb8();
        assert_eq!(
            second.dimensions(),
            (64 * 32, 32),
            "one row is left for sheet 1"
        );
        assert!(
            second.get_pixel(16, 16)[0] > 200,
            "point 4096 is sheet 1's first cell"
        );
        let back: SpriteInfo =
            serde_json::from_slice(&std::fs::read(dir.path().join("sprite.json")).unwrap())
                .unwrap();
        assert_eq!(back, info);
    }
}
