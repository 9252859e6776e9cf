//! Nearest-neighbour galleries: for chosen test images, the 10 nearest training
//! images with class, distance and a correct/incorrect border, and the classes of the
//! top 10 with their majority vote — the reference README's "Classes of Top 10 closest
//! samples" example — as `galleries.json` and `index.html`, the thumbnails cells of
//! tiled sheets (`super::gallery_strip`).
//!
//! Queries by default: a sample of the held-out classes' test images and every
//! misclassified test image (nearest training image of another class), each up to a
//! limit. A query's id is `q<N>`, `N` its point index in the phase's train-then-test
//! order (the same index as the maps' CSV), so maps link straight to it.

use super::data::PhaseData;
use super::gallery_strip::{strip, PAGE_CELL};
use super::sprites::{self, SpriteInfo};
use crate::atomic::{remove_files_where, write_json};
use crate::data::rng::Rng;
use crate::eval::gallery::{Gallery, GalleryEntry, GalleryManifest, Origin};
use crate::eval::predict::predict_embeddings;
use crate::html;
pub use crate::run::galleries::{ClassVotes, GalleryItem, GalleryNeighbour, GalleryThumbs};
use crate::run::galleries::{Galleries, Query};
use crate::run::record::SCHEMA_VERSION;
use crate::run::GALLERIES_FILE;
use anyhow::Result;
use image::RgbImage;
use maud::html;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

/// Largest side of a gallery thumbnail (96: the dataset images are 64–160 px; 128 made
/// each cell 1.8 times the pixels for no detail most of them have).
const CELL: u32 = 96;
/// Smallest cell: a gallery whose images are all smaller uses their largest side, down
/// to this (images are shrunk, never enlarged, so a 64 px dataset's 96 px cells were
/// over half white margin). The map's hover sheets serve when their cells are this big.
const MIN_CELL: u32 = 64;
/// Stem of the gallery's own sheets, `thumbs-<k>.jpg`.
const THUMBS_STEM: &str = "thumbs";

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

/// Gives every query and neighbour of `items` its thumbnail cell and returns where the
/// cells are: the map's hover sheets (`map_sprite`, in `../projections/`, one cell per
/// point) when their cells are at least [`MIN_CELL`] px, else sheets of the gallery's
/// own in `dir`, holding each image shown once, in order of first appearance.
fn place_thumbnails(
    data: &PhaseData,
    dir: &Path,
    items: &mut [GalleryItem],
    map_sprite: Option<&SpriteInfo>,
) -> Result<GalleryThumbs> {
    // Neighbours are training images: point `i < n_train` is gallery entry `i`.
    let point_of: HashMap<&Path, usize> = data.paths[..data.n_train]
        .iter()
        .enumerate()
        .rev() // a path listed twice keeps its first point
        .map(|(i, p)| (p.as_path(), i))
        .collect();
    if let Some(sprite) = map_sprite.filter(|s| s.cell >= MIN_CELL && s.count == data.len()) {
        for item in items.iter_mut() {
            item.cell = item.id[1..].parse().ok();
            for n in &mut item.neighbours {
                n.cell = point_of.get(Path::new(&n.path)).copied();
            }
        }
        return Ok(GalleryThumbs {
            sprite: sprite.clone(),
            dir: "../projections/".into(),
        });
    }
    let mut shown: Vec<PathBuf> = Vec::new();
    let mut cell_of: HashMap<PathBuf, usize> = HashMap::new();
    let mut cell = |path: PathBuf| {
        *cell_of.entry(path).or_insert_with_key(|p| {
            shown.push(p.clone());
            shown.len() - 1
        })
    };
    for item in items.iter_mut() {
        let query = item.id[1..].parse::<usize>().ok().map(|p| &data.paths[p]);
        item.cell = query.map(|p| cell(p.clone()));
        for n in &mut item.neighbours {
            n.cell = Some(cell(PathBuf::from(&n.path)));
        }
    }
    let decoded = sprites::decode_thumbnails(&shown, CELL);
    let side = cell_side(&decoded);
    let (thumbs, _) = sprites::fill_missing(decoded, side);
    let sprite = SpriteInfo::with_cell(THUMBS_STEM, thumbs.len(), side);
    Ok(GalleryThumbs {
        sprite: sprites::write_sprites_as(dir, sprite, &thumbs)?,
        dir: String::new(),
    })
}

/// Removes from `dir` the thumbnail files this gallery does not use: contact sheets of
/// earlier versions (`q<N>.jpg`) and own sheets past the ones `thumbs` names (or all of
/// them when the map's sheets serve), so the report does not copy dead images.
fn remove_stale_sheets(dir: &Path, thumbs: &GalleryThumbs) -> Result<()> {
    let own = thumbs.dir.is_empty();
    remove_files_where(dir, |name| {
        let numbered = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .and_then(|k| k.parse::<u32>().ok())
        };
        numbered("q", ".jpg").is_some()
            || numbered(&format!("{THUMBS_STEM}-"), ".jpg")
                .is_some_and(|k| !own || k >= thumbs.sprite.sheets)
            || (!own && name == format!("{THUMBS_STEM}.json"))
    })
}

/// Builds the galleries of a phase into `dir` (`galleries.json`, `index.html`, and
/// `thumbs-<k>.jpg` unless the map's sheets `map_sprite` serve); returns the items.
/// `nav` links the page to other pages (relative href from `dir`, label).
pub fn write_galleries(
    data: &PhaseData,
    dir: &Path,
    opts: &GalleryOptions,
    nav: &[(String, String)],
    map_sprite: Option<&SpriteInfo>,
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
                    cell: None,
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
                sheet: String::new(),
                cell: None,
                neighbours,
                top_classes: top_classes(&classes),
            });
        }
    }
    let thumbs = place_thumbnails(data, dir, &mut items, map_sprite)?;
    remove_stale_sheets(dir, &thumbs)?;
    crate::atomic::write_atomic(
        &dir.join("index.html"),
        galleries_html(data, &items, &thumbs, nav).as_bytes(),
    )?;
    let record = Galleries {
        schema_version: SCHEMA_VERSION,
        items,
        thumbs: Some(thumbs),
    };
    write_json(&dir.join(GALLERIES_FILE), &record)?;
    Ok(record.items)
}

/// The galleries page: one section per query, anchored at its id.
pub fn galleries_html(
    data: &PhaseData,
    items: &[GalleryItem],
    thumbs: &GalleryThumbs,
    nav: &[(String, String)],
) -> String {
    let body = html! {
        h1 { "Nearest-neighbour galleries — " (data.phase.dir_name()) }
        p.muted {
            (items.len()) " queries: a sample of the held-out classes' test images and the \
             misclassified ones. Each shows the test image and its nearest training images \
             (blue: the query; green: same class; red: another), the classes of the top \
             neighbours and their majority vote."
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
                (strip(item, thumbs, "", PAGE_CELL, true))
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
        let items = write_galleries(&data, dir.path(), &opts, &[], None).unwrap();
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
        // No map sheets given: the gallery's own, each image once, every cell placed.
        let sheet = std::fs::metadata(dir.path().join("thumbs-0.jpg")).unwrap();
        assert!(sheet.len() > 0);
        let record: Galleries = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("galleries.json")).unwrap(),
        )
        .unwrap();
        let thumbs = record.thumbs.unwrap();
        let mut paths: Vec<&str> = items
            .iter()
            .flat_map(|i| i.neighbours.iter().map(|n| n.path.as_str()))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(thumbs.sprite.count, items.len() + paths.len());
        for i in &items {
            assert!(i.cell.is_some() && i.neighbours.iter().all(|n| n.cell.is_some()));
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

    /// The map's sheets serve when their cells are 64 px: cells are point indices and
    /// no image is written; smaller cells get the gallery's own sheets. Contact sheets of
    /// earlier versions and sheets no longer used are removed.
    #[test]
    fn thumbnails_come_from_the_map_sheets_when_large_enough() {
        tch::set_num_threads(1);
        let data = synthetic(&["a", "b", "c"], 1, 30, 9, 4);
        let dir = tempfile::tempdir().unwrap();
        for stale in ["q3.jpg", "thumbs-7.jpg", "keep.jpg"] {
            std::fs::write(dir.path().join(stale), b"x").unwrap();
        }
        let opts = GalleryOptions::default();
        let large = SpriteInfo::with_cell("sprite", data.len(), 64);
        let items = write_galleries(&data, dir.path(), &opts, &[], Some(&large)).unwrap();
        assert!(!items.is_empty());
        let point_of = |path: &str| data.paths.iter().position(|p| p.to_str() == Some(path));
        for item in &items {
            assert_eq!(item.cell, item.id[1..].parse().ok());
            for n in &item.neighbours {
                assert_eq!(n.cell, point_of(&n.path), "{}", n.path);
            }
        }
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            names(dir.path()),
            ["galleries.json", "index.html", "keep.jpg"]
        );
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(html.contains("url(../projections/sprite-0.jpg)"));

        let small = SpriteInfo::with_cell("sprite", data.len(), 32);
        write_galleries(&data, dir.path(), &opts, &[], Some(&small)).unwrap();
        assert_eq!(
            names(dir.path()),
            [
                "galleries.json",
                "index.html",
                "keep.jpg",
                "thumbs-0.jpg",
                "thumbs.json"
            ]
        );
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(html.contains("url(thumbs-0.jpg)") && !html.contains("projections"));
        // Unreadable images (these paths do not exist): grey cells of the largest size.
        let record: Galleries = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("galleries.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(record.thumbs.unwrap().sprite.cell, CELL);
    }
}
