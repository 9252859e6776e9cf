//! Nearest-neighbour galleries: for chosen test images, the 10 nearest training
//! images with class, distance and a correct/incorrect border, and the classes of the
//! top 10 with their majority vote — the reference README's "Classes of Top 10 closest
//! samples" example — as JPEG contact sheets, `galleries.json` and `index.html`.
//!
//! Queries by default: a sample of the held-out classes' test images and every
//! misclassified test image (nearest training image of another class), each up to a
//! limit. A query's id is `q<N>`, `N` its point index in the phase's train-then-test
//! order (the same index as the maps' CSV), so maps link straight to it.

use super::data::PhaseData;
use crate::atomic::write_json;
use crate::chart::FONT_BYTES;
use crate::data::rng::Rng;
use crate::eval::gallery::{Gallery, GalleryEntry, GalleryManifest, Origin};
use crate::eval::predict::predict_embeddings;
use crate::html;
use crate::imaging::{square, write_jpeg};
pub use crate::run::galleries::{ClassVotes, GalleryItem, GalleryNeighbour};
use crate::run::galleries::{Galleries, Query};
use crate::run::record::SCHEMA_VERSION;
use crate::run::GALLERIES_FILE;
use ab_glyph::{FontRef, PxScale};
use anyhow::{anyhow, Result};
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_text_mut};
use imageproc::rect::Rect;
use maud::html;
use serde::Serialize;
use std::path::Path;

/// Which queries and how many neighbours.
#[derive(Debug, Clone, Serialize)]
pub struct GalleryOptions {
    /// Test images of held-out classes to sample (spread over the classes).
    pub unseen_sample: usize,
    /// Misclassified test images to include, at most.
    pub misclassified_limit: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Seed of the sample.
    pub seed: u64,
}

impl Default for GalleryOptions {
    fn default() -> Self {
        GalleryOptions {
            unseen_sample: 20,
            misclassified_limit: 50,
            k: 10,
            seed: 42,
        }
    }
}

/// Test rows (indices into the test set) chosen as queries: a seeded sample of the
/// held-out classes' test images, spread over classes, then misclassified ones, in
/// test order, without repeats.
fn choose_queries(data: &PhaseData, misclassified: &[bool], opts: &GalleryOptions) -> Vec<usize> {
    let n_test = data.len() - data.n_train;
    let mut unseen: Vec<usize> = (0..n_test)
        .filter(|&t| data.unseen(data.n_train + t))
        .collect();
    Rng::new(opts.seed).shuffle(&mut unseen);
    // Round-robin over classes so the sample covers as many held-out classes as it can.
    let mut by_class: std::collections::BTreeMap<i64, Vec<usize>> =
        std::collections::BTreeMap::new();
    for t in unseen {
        by_class
            .entry(data.labels[data.n_train + t])
            .or_default()
            .push(t);
    }
    let mut chosen = Vec::new();
    let mut round = 0;
    while chosen.len() < opts.unseen_sample && by_class.values().any(|v| v.len() > round) {
        for v in by_class.values() {
            if chosen.len() < opts.unseen_sample && v.len() > round {
                chosen.push(v[round]);
            }
        }
        round += 1;
    }
    let mut extra = 0;
    for (t, &wrong) in misclassified.iter().enumerate().take(n_test) {
        if extra >= opts.misclassified_limit {
            break;
        }
        if wrong && !chosen.contains(&t) {
            chosen.push(t);
            extra += 1;
        }
    }
    chosen
}

/// Votes per class among `classes` (in order), most votes first, ties by first appearance.
pub fn top_classes(classes: &[String]) -> Vec<ClassVotes> {
    let mut tally: Vec<ClassVotes> = Vec::new();
    for c in classes {
        match tally.iter_mut().find(|v| &v.class == c) {
            Some(v) => v.votes += 1,
            None => tally.push(ClassVotes {
                class: c.clone(),
                votes: 1,
            }),
        }
    }
    tally.sort_by_key(|v| std::cmp::Reverse(v.votes)); // stable: ties keep first appearance
    tally
}

/// Largest side of an image cell of the contact sheet (96: the dataset images are
/// 64–160 px; 128 made each sheet 1.8 times the pixels for no detail most of them have).
const CELL: u32 = 96;
/// Smallest cell: a sheet whose images are all smaller uses their largest side, down to
/// this (images are shrunk, never enlarged, so a 64 px dataset's 96 px cells were over
/// half white margin, and the demo's sheets two thirds of its report site).
const MIN_CELL: u32 = 64;
const PAD: u32 = 8;
const HEADER: u32 = 34;
const CAPTION: u32 = 40;

/// Frame colours: the query, a neighbour of its class, a neighbour of another class.
const QUERY_BLUE: Rgb<u8> = Rgb([36, 84, 197]);
const SAME_GREEN: Rgb<u8> = Rgb([26, 127, 55]);
const OTHER_RED: Rgb<u8> = Rgb([198, 40, 40]);
const GREY_TEXT: Rgb<u8> = Rgb([90, 90, 90]);

/// `s` cut to `max` characters, an ellipsis marking the cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max - 1).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

/// Paints `image` into cell `x` of the sheet's image row inside a 4-pixel frame.
fn framed_cell(sheet: &mut RgbImage, x: u32, colour: Rgb<u8>, image: &RgbImage, cell: u32) {
    let (x0, y0) = (x - 4, HEADER + PAD - 4);
    let frame = Rect::at(x0 as i32, y0 as i32).of_size(cell + 8, cell + 8);
    draw_filled_rect_mut(sheet, frame, colour);
    image::imageops::overlay(sheet, &square(image, cell), x as i64, (HEADER + PAD) as i64);
}

/// The cell side of a sheet of `images` (`None`: unreadable): their largest side,
/// between [`MIN_CELL`] and [`CELL`]; [`CELL`] when none is readable.
fn cell_side(images: &[Option<RgbImage>]) -> u32 {
    images
        .iter()
        .flatten()
        .map(|i| i.width().max(i.height()))
        .max()
        .map_or(CELL, |side| side.clamp(MIN_CELL, CELL))
}

/// The sheet's header line: the query's classes and the vote of its neighbours.
fn header_text(item: &GalleryItem) -> String {
    let votes: Vec<String> = item
        .top_classes
        .iter()
        .map(|v| format!("{} ×{}", short(&v.class, 22), v.votes))
        .collect();
    let header = format!(
        "true {} · nearest {} · majority {} — top {}: {}",
        short(&item.true_class, 28),
        short(&item.predicted, 28),
        short(&item.majority, 28),
        item.neighbours.len(),
        votes.join(", ")
    );
    short(&header, 230)
}

/// Draws a query's contact sheet: the query (blue frame), then its neighbours framed
/// green (same class) or red, with class and distance under each, and the top-k
/// classes with the vote in the header. Text is the embedded DejaVu Sans.
fn contact_sheet(data: &PhaseData, query_point: usize, item: &GalleryItem) -> Result<RgbImage> {
    let font = FontRef::try_from_slice(FONT_BYTES)
        .map_err(|e| anyhow!("the embedded font does not parse: {e}"))?;
    let paths = std::iter::once(data.paths[query_point].as_path())
        .chain(item.neighbours.iter().map(|n| Path::new(&n.path)));
    let images: Vec<Option<RgbImage>> = paths
        .map(|p| crate::data::decode::decode_rgb(p).ok())
        .collect();
    let cell = cell_side(&images);
    let mut images = images.into_iter().map(|image| match image {
        Some(image) => crate::imaging::shrink(&image, cell),
        None => RgbImage::from_pixel(cell, cell, Rgb([200, 200, 200])),
    });
    let mut next_image = || images.next().expect("one image per cell");
    // Captions under a smaller cell: a smaller font, and as many characters as fit its
    // column (about 5.6 px each at 10 px), so neighbouring labels do not overlap.
    let small = cell < CELL;
    let caption_px = if small { 10.0 } else { 12.0 };
    let column_chars = ((cell + PAD) as f32 / 5.6) as usize;
    // `full` characters under a 96 px cell; under a smaller one, the column less `prefix`.
    let fit = |full: usize, prefix: usize| {
        if small {
            column_chars.saturating_sub(prefix).max(4)
        } else {
            full
        }
    };
    let cells = 1 + item.neighbours.len() as u32;
    let (w, h) = (
        PAD + cells * (cell + PAD) + PAD,
        HEADER + cell + 2 * PAD + CAPTION,
    );
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let x_of = |c: u32| PAD + c * (cell + PAD) + PAD / 2;
    let text = |sheet: &mut RgbImage, s: &str, x: u32, y: u32, size: f32, colour: Rgb<u8>| {
        draw_text_mut(
            sheet,
            colour,
            x as i32,
            y as i32,
            PxScale::from(size),
            &font,
            s,
        )
    };
    text(&mut sheet, &header_text(item), PAD, 9, 15.0, Rgb([0, 0, 0]));
    let y = HEADER + cell + PAD + 8;
    framed_cell(&mut sheet, x_of(0), QUERY_BLUE, &next_image(), cell);
    let query = short(&format!("query: {}", item.true_class), fit(21, 0));
    text(&mut sheet, &query, x_of(0), y, caption_px, QUERY_BLUE);
    let kind = if item.unseen {
        "held-out class"
    } else {
        "test image"
    };
    text(&mut sheet, kind, x_of(0), y + 15, caption_px, GREY_TEXT);
    for (c, n) in item.neighbours.iter().enumerate() {
        let x = x_of(c as u32 + 1);
        let colour = if n.correct { SAME_GREEN } else { OTHER_RED };
        framed_cell(&mut sheet, x, colour, &next_image(), cell);
        let label = format!("{}. {}", c + 1, short(&n.class, fit(18, 4)));
        text(&mut sheet, &label, x, y, caption_px, colour);
        text(
            &mut sheet,
            &format!("d = {:.4}", n.distance),
            x,
            y + 15,
            caption_px,
            GREY_TEXT,
        );
    }
    Ok(sheet)
}

/// Builds the galleries of a phase into `dir` (`galleries.json`, `q<N>.jpg`,
/// `index.html`); returns the items.
/// `nav` links the page to other pages (relative href from `dir`, label).
pub fn write_galleries(
    data: &PhaseData,
    dir: &Path,
    opts: &GalleryOptions,
    nav: &[(String, String)],
) -> Result<Vec<GalleryItem>> {
    let n_test = data.len() - data.n_train;
    let mut items = Vec::new();
    if n_test > 0 && data.n_train > 0 {
        let gallery = Gallery {
            embeddings: data.rows(0..data.n_train),
            manifest: GalleryManifest {
                classes: data.classes.clone(),
                entries: (0..data.n_train)
                    .map(|i| GalleryEntry {
                        path: data.paths[i].clone(),
                        label: data.labels[i] as usize,
                        origin: Origin::Train,
                    })
                    .collect(),
            },
        };
        let test_paths = &data.paths[data.n_train..];
        let predictions = predict_embeddings(
            &gallery,
            &data.rows(data.n_train..data.len()),
            test_paths,
            opts.k.max(1),
            data.distance,
        )?;
        let misclassified: Vec<bool> = (0..n_test)
            .map(|t| predictions[t].nearest != data.class_name(data.n_train + t))
            .collect();
        for t in choose_queries(data, &misclassified, opts) {
            let point = data.n_train + t;
            let p = &predictions[t];
            let true_class = data.class_name(point).to_string();
            let neighbours: Vec<GalleryNeighbour> = p
                .neighbours
                .iter()
                .map(|n| GalleryNeighbour {
                    path: n.path.display().to_string(),
                    class: n.class.clone(),
                    distance: n.distance,
                    correct: n.class == true_class,
                })
                .collect();
            let classes: Vec<String> = neighbours.iter().map(|n| n.class.clone()).collect();
            items.push(GalleryItem {
                id: format!("q{point}"),
                query: Query::Path(data.paths[point].display().to_string()),
                correct: p.nearest == true_class,
                true_class,
                predicted: p.nearest.clone(),
                majority: p.majority.clone(),
                unseen: data.unseen(point),
                sheet: format!("q{point}.jpg"),
                neighbours,
                top_classes: top_classes(&classes),
            });
        }
    }
    for item in &items {
        let point: usize = item.id[1..].parse()?;
        write_jpeg(&dir.join(&item.sheet), &contact_sheet(data, point, item)?)?;
    }
    let record = Galleries {
        schema_version: SCHEMA_VERSION,
        items,
    };
    write_json(&dir.join(GALLERIES_FILE), &record)?;
    let items = record.items;
    crate::atomic::write_atomic(
        &dir.join("index.html"),
        galleries_html(data, &items, nav).as_bytes(),
    )?;
    Ok(items)
}

/// The galleries page: one section per query, anchored at its id.
pub fn galleries_html(data: &PhaseData, items: &[GalleryItem], nav: &[(String, String)]) -> String {
    let body = html! {
        h1 { "Nearest-neighbour galleries — " (data.phase.dir_name()) }
        p.muted {
            (items.len()) " queries: a sample of the held-out classes' test images and the \
             misclassified ones. Each shows the test image and its nearest training images \
             (green: same class, red: another), the classes of the top neighbours and their \
             majority vote."
        }
        @if items.is_empty() {
            p.note { "No query: no held-out class and no misclassified test image." }
        }
        @for item in items {
            @let k = item.neighbours.len();
            @let order: Vec<&str> = item.neighbours.iter().map(|n| n.class.as_str()).collect();
            @let votes: Vec<String> = item
                .top_classes
                .iter()
                .map(|v| format!("{} ({})", v.class, v.votes))
                .collect();
            section.query id=(item.id) {
                h2 {
                    (item.id) ": " (item.true_class)
                    @if item.unseen { " " span.muted { "(held-out class)" } }
                }
                p {
                    "true label: " b { (item.true_class) }
                    " · predicted (nearest): " b { (item.predicted) } " "
                    @if item.correct {
                        span.ok { "nearest correct" }
                    } @else {
                        span.bad { "nearest wrong" }
                    }
                    " · majority of " (k) ": "
                    b class=(if item.majority == item.true_class { "ok" } else { "bad" }) {
                        (item.majority)
                    }
                }
                p { "Classes of top " (k) " closest samples: " (order.join(", ")) }
                p.muted { "votes: " (votes.join(", ")) }
                img src=(html::url(&item.sheet)) loading="lazy"
                    alt={ "query " (item.query) " and its nearest neighbours" };
                table {
                    thead {
                        tr { th { "#" } th { "class" } th.num { "distance" } th { "image" } }
                    }
                    tbody {
                        @for (r, n) in item.neighbours.iter().enumerate() {
                            tr {
                                td { (r + 1) }
                                td class=(if n.correct { "ok" } else { "bad" }) { (n.class) }
                                td.num { (format!("{:.4}", n.distance)) }
                                td.muted { (n.path) }
                            }
                        }
                    }
                }
            }
        }
    };
    html::page(&format!("Galleries — {}", data.phase.dir_name()), nav, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::data::synthetic;

    #[test]
    fn top_classes_count_votes_in_order_of_appearance() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The reference README's example: 24, 24, 5, 24, 5, 5, 5, 5, 24, 5.
        let votes = top_classes(&c(&["24", "24", "5", "24", "5", "5", "5", "5", "24", "5"]));
        assert_eq!(
            votes
                .iter()
                .map(|v| (v.class.as_str(), v.votes))
                .collect::<Vec<_>>(),
            vec![("5", 6), ("24", 4)]
        );
        let tie = top_classes(&c(&["b", "a", "a", "b"]));
        assert_eq!(tie[0].class, "b");
    }

    #[test]
    fn galleries_pick_held_out_and_misclassified_queries_and_escape_names() {
        tch::set_num_threads(1);
        let mut data = synthetic(&["<b>x</b>", "one", "two", "three"], 2, 40, 12, 6);
        // Test point 0 (class 0) moved onto class 1's cluster: misclassified.
        let d = data.embeddings.cols;
        let donor: Vec<f32> = data.embeddings.row(1).to_vec();
        data.embeddings.data[40 * d..41 * d].copy_from_slice(&donor);
        let dir = tempfile::tempdir().unwrap();
        let opts = GalleryOptions {
            unseen_sample: 3,
            misclassified_limit: 5,
            k: 10,
            seed: 1,
        };
        let items = write_galleries(&data, dir.path(), &opts, &[]).unwrap();
        let unseen = items.iter().filter(|i| i.unseen).count();
        assert_eq!(unseen, 3);
        let wrong: Vec<&GalleryItem> = items.iter().filter(|i| !i.correct).collect();
        assert_eq!(wrong.len(), 1);
        assert_eq!(
            (
                wrong[0].id.as_str(),
                wrong[0].predicted.as_str(),
                wrong[0].true_class.as_str()
            ),
            ("q40", "one", "<b>x</b>")
        );
        let item = &items[0];
        assert_eq!(item.neighbours.len(), 10);
        assert!(item
            .neighbours
            .windows(2)
            .all(|w| w[0].distance <= w[1].distance));
        assert_eq!(item.top_classes.iter().map(|v| v.votes).sum::<usize>(), 10);
        for i in &items {
            assert!(dir.path().join(&i.sheet).exists());
        }
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(!html.contains("<b>x</b>") && html.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(html.contains("id=\"q40\""));
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("galleries.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["items"].as_array().unwrap().len(), items.len());
        assert_eq!(
            json["items"][0]["neighbours"][0]["correct"].as_bool(),
            Some(items[0].neighbours[0].correct)
        );
    }

    /// Images smaller than the largest cell get cells of their own size, down to 64 px.
    #[test]
    fn cells_fit_the_largest_image_between_64_and_96_px() {
        let img = |w, h| Some(RgbImage::new(w, h));
        assert_eq!(cell_side(&[img(64, 40), img(50, 64), None]), 64);
        assert_eq!(cell_side(&[img(32, 32)]), 64);
        assert_eq!(cell_side(&[img(80, 72), img(64, 64)]), 80);
        assert_eq!(cell_side(&[img(160, 120)]), 96);
        assert_eq!(
            cell_side(&[None, None]),
            96,
            "nothing readable: the largest cell"
        );
    }

    #[test]
    fn sheets_frame_each_cell_by_its_verdict_and_write_its_labels() {
        tch::set_num_threads(1);
        let data = synthetic(&["a", "b"], 1, 4, 2, 3);
        let neighbour = |class: &str, correct: bool| GalleryNeighbour {
            path: "no/such/image.png".into(),
            class: class.into(),
            distance: 0.25,
            correct,
        };
        let item = GalleryItem {
            id: "q4".into(),
            query: Query::Path("q.png".into()),
            true_class: "a".into(),
            predicted: "a".into(),
            majority: "a".into(),
            correct: true,
            unseen: false,
            sheet: "q4.jpg".into(),
            neighbours: vec![neighbour("a", true), neighbour("b", false)],
            top_classes: top_classes(&["a".into(), "b".into()]),
        };
        let sheet = contact_sheet(&data, 4, &item).unwrap();
        assert_eq!(
            sheet.dimensions(),
            (
                3 * (CELL + PAD) + 2 * PAD,
                HEADER + CELL + 2 * PAD + CAPTION
            )
        );
        // The frame's top-left pixel of each cell, then the unreadable image drawn grey.
        let frame_at =
            |c: u32| *sheet.get_pixel(PAD + c * (CELL + PAD) + PAD / 2 - 4, HEADER + PAD - 4);
        assert_eq!(frame_at(0), QUERY_BLUE);
        assert_eq!(frame_at(1), SAME_GREEN);
        assert_eq!(frame_at(2), OTHER_RED);
        assert_eq!(
            *sheet.get_pixel(PAD + PAD / 2 + 1, HEADER + PAD + 1),
            Rgb([200, 200, 200])
        );
        // Text was drawn: dark pixels in the header, the query's blue and the wrong
        // neighbour's red under their cells, and nothing but white elsewhere there.
        let inked = |x0: u32, x1: u32, y0: u32, y1: u32, hit: &dyn Fn(Rgb<u8>) -> bool| {
            (x0..x1).any(|x| (y0..y1).any(|y| hit(*sheet.get_pixel(x, y))))
        };
        assert!(inked(0, sheet.width(), 0, HEADER, &|p| p
            .0
            .iter()
            .all(|&v| v < 100)));
        let caption = HEADER + CELL + PAD + 4;
        let cell = |c: u32| PAD + c * (CELL + PAD);
        let near = |target: Rgb<u8>| {
            move |p: Rgb<u8>| (0..3).all(|i| (p.0[i] as i32 - target.0[i] as i32).abs() < 40)
        };
        assert!(inked(
            cell(0),
            cell(1),
            caption,
            caption + 16,
            &near(QUERY_BLUE)
        ));
        assert!(inked(
            cell(2),
            cell(3),
            caption,
            caption + 16,
            &near(OTHER_RED)
        ));
        assert!(!inked(
            cell(0),
            cell(1),
            caption,
            caption + 16,
            &near(OTHER_RED)
        ));
    }
}
