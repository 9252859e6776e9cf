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
use crate::chart::{register_fonts, FONT};
use crate::data::rng::Rng;
use crate::eval::gallery::{Gallery, GalleryEntry, GalleryManifest, Origin};
use crate::eval::predict::predict_embeddings;
use crate::html;
use crate::imaging::{square, write_jpeg};
use anyhow::{anyhow, Result};
use image::{Rgb, RgbImage};
use maud::html;
use plotters::prelude::*;
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

/// One neighbour of a query.
#[derive(Debug, Clone, Serialize)]
pub struct GalleryNeighbour {
    /// Image path as stored in the run.
    pub path: String,
    /// Its class.
    pub class: String,
    /// Distance to the query (the run's distance).
    pub distance: f64,
    /// Same class as the query.
    pub correct: bool,
}

/// A class among the top k and its votes.
#[derive(Debug, Clone, Serialize)]
pub struct ClassVotes {
    /// Class name.
    pub class: String,
    /// How many of the k nearest have it.
    pub votes: usize,
}

/// One gallery entry (`galleries.json` item).
#[derive(Debug, Clone, Serialize)]
pub struct GalleryItem {
    /// `q<N>`.
    pub id: String,
    /// Query image path.
    pub query: String,
    /// Its class.
    pub true_class: String,
    /// Class of the nearest training image.
    pub predicted: String,
    /// Majority vote of the k nearest (ties: nearest wins).
    pub majority: String,
    /// `predicted == true_class`.
    pub correct: bool,
    /// The query's class is held out.
    pub unseen: bool,
    /// Contact sheet file name, beside `galleries.json`.
    pub sheet: String,
    /// The k nearest training images, nearest first.
    pub neighbours: Vec<GalleryNeighbour>,
    /// Classes of the k nearest by votes (ties: order of first appearance).
    pub top_classes: Vec<ClassVotes>,
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
    for t in 0..n_test {
        if extra >= opts.misclassified_limit {
            break;
        }
        if misclassified[t] && !chosen.contains(&t) {
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
    tally.sort_by(|a, b| b.votes.cmp(&a.votes)); // stable: ties keep first appearance
    tally
}

/// Side of an image cell of the contact sheet.
const CELL: u32 = 128;
const PAD: u32 = 8;
const HEADER: u32 = 34;
const CAPTION: u32 = 40;

/// Draws a query's contact sheet: the query (blue frame), then its neighbours framed
/// green (same class) or red, with class and distance under each, and the top-k
/// classes with the vote in the header.
fn contact_sheet(data: &PhaseData, query_point: usize, item: &GalleryItem) -> Result<RgbImage> {
    register_fonts();
    let cells = 1 + item.neighbours.len() as u32;
    let (w, h) = (
        PAD + cells * (CELL + PAD) + PAD,
        HEADER + CELL + 2 * PAD + CAPTION,
    );
    let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let load = |path: &Path| {
        crate::imaging::thumbnail(path, CELL)
            .unwrap_or_else(|_| RgbImage::from_pixel(CELL, CELL, Rgb([200, 200, 200])))
    };
    let frame = |sheet: &mut RgbImage, x: u32, colour: Rgb<u8>, image: &RgbImage| {
        let (x0, y0) = (x - 4, HEADER + PAD - 4);
        for dx in 0..CELL + 8 {
            for dy in 0..CELL + 8 {
                sheet.put_pixel(x0 + dx, y0 + dy, colour);
            }
        }
        image::imageops::overlay(sheet, &square(image, CELL), x as i64, (HEADER + PAD) as i64);
    };
    let x_of = |c: u32| PAD + c * (CELL + PAD) + PAD / 2;
    frame(
        &mut sheet,
        x_of(0),
        Rgb([36, 84, 197]),
        &load(&data.paths[query_point]),
    );
    for (c, n) in item.neighbours.iter().enumerate() {
        let colour = if n.correct {
            Rgb([26, 127, 55])
        } else {
            Rgb([198, 40, 40])
        };
        frame(
            &mut sheet,
            x_of(c as u32 + 1),
            colour,
            &load(Path::new(&n.path)),
        );
    }
    let mut buffer = sheet.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        let err = |e: plotters::drawing::DrawingAreaErrorKind<_>| {
            anyhow!("drawing the contact sheet: {e}")
        };
        let text = |s: String, x: i32, y: i32, size: u32, colour: RGBColor| {
            Text::new(s, (x, y), (FONT, size).into_font().color(&colour))
        };
        let short = |s: &str, max: usize| {
            if s.chars().count() > max {
                s.chars().take(max - 1).collect::<String>() + "…"
            } else {
                s.to_string()
            }
        };
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
        root.draw(&text(short(&header, 230), PAD as i32, 9, 15, BLACK))
            .map_err(err)?;
        let y = (HEADER + CELL + PAD + 8) as i32;
        root.draw(&text(
            short(&format!("query: {}", item.true_class), 21),
            x_of(0) as i32,
            y,
            12,
            RGBColor(36, 84, 197),
        ))
        .map_err(err)?;
        root.draw(&text(
            if item.unseen {
                "held-out class".into()
            } else {
                "test image".into()
            },
            x_of(0) as i32,
            y + 15,
            12,
            RGBColor(90, 90, 90),
        ))
        .map_err(err)?;
        for (c, n) in item.neighbours.iter().enumerate() {
            let x = x_of(c as u32 + 1) as i32;
            let colour = if n.correct {
                RGBColor(26, 127, 55)
            } else {
                RGBColor(198, 40, 40)
            };
            root.draw(&text(
                format!("{}. {}", c + 1, short(&n.class, 18)),
                x,
                y,
                12,
                colour,
            ))
            .map_err(err)?;
            root.draw(&text(
                format!("d = {:.4}", n.distance),
                x,
                y + 15,
                12,
                RGBColor(90, 90, 90),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    RgbImage::from_raw(w, h, buffer)
        .ok_or_else(|| anyhow!("contact sheet buffer has the wrong size"))
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
        );
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
                query: data.paths[point].display().to_string(),
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
    write_json(
        &dir.join("galleries.json"),
        &serde_json::json!({ "items": items }),
    )?;
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
}
