//! The interactive HTML map: every point drawn on a `<canvas>`, so 100 000 points are
//! one bitmap, not 100 000 DOM nodes.
//!
//! The page is static and self-contained (works from `file://`, no server, no CDN):
//! the points are one JSON object of flat columns (positions in tenths of the view's
//! units, labels, flags, neighbours, paths after their common prefix) inlined with
//! [`html::script_json`], and the code is `assets/map.js`, embedded at build time.
//! The script keeps a uniform grid over the view for hover, zooms and pans, searches
//! class names, highlights a class from its legend entry, colours by class, split or
//! nearest-neighbour correctness, and lists a box selection with links to the
//! galleries. Thumbnails come from the tiled sheets of [`super::sprites`], each
//! fetched by the browser only when a point on it is first shown. Points placed later
//! by `dmlviz project --add` ([`super::add`]) are drawn on top, ringed in black.
//! Text reaches the page through maud (which escapes it) or `textContent`, so class
//! names and paths cannot inject markup.

use super::data::{PhaseData, Split};
use super::input::Matrix;
use super::sprites::SpriteInfo;
use crate::chart::{class_colour, css};
use crate::html;
use maud::html;
use serde::Serialize;

/// The map's script (`assets/map.js`).
pub const MAP_SCRIPT: &str = include_str!("../../assets/map.js");

/// Per-point flags in the page's `flags` column (bits).
pub mod flag {
    /// A test image (else a training image).
    pub const TEST: u8 = 1;
    /// Of a class held out by the protocol.
    pub const UNSEEN: u8 = 2;
    /// A gallery query (its entry is `q<index>`).
    pub const GALLERY: u8 = 4;
    /// Its nearest other image in the embedding space has its class.
    pub const NN_CORRECT: u8 = 8;
    /// Placed later on the stored layout (`project --add`).
    pub const ADDED: u8 = 16;
}

/// Points placed on the layout after it was computed, drawn distinctly.
pub struct AddedPoints<'a> {
    /// `[m, 2]` positions in the layout's units.
    pub layout: &'a Matrix,
    /// Class name of each added point (may be a class the map does not have).
    pub classes: &'a [String],
    /// Image of each added point.
    pub paths: &'a [String],
    /// Per added point, its nearest stored points (index, distance), nearest first.
    pub near: &'a [Vec<(usize, f32)>],
    /// Their thumbnails' sheets, when made.
    pub sprite: Option<&'a SpriteInfo>,
}

/// What the map page shows beside the points.
pub struct MapPage<'a> {
    /// Page title, e.g. "UMAP — phase-all".
    pub title: String,
    /// One line of facts (points, trustworthiness, seconds), plain text.
    pub facts: String,
    /// Per point, its nearest points in the embedding space (index, distance).
    pub neighbours: &'a [Vec<(usize, f32)>],
    /// Per point: it is a gallery query (its entry is `q<index>`).
    pub gallery: &'a [bool],
    /// The sprite sheets beside the page, when thumbnails were made.
    pub sprite: Option<&'a SpriteInfo>,
    /// Points added later, if any.
    pub added: Option<AddedPoints<'a>>,
    /// Other pages to link (relative href, label).
    pub nav: Vec<(String, String)>,
}

/// The page's data: flat columns, one entry per point (stored points, then added ones).
#[derive(Serialize)]
struct MapData<'a> {
    classes: Vec<String>,
    colours: Vec<String>,
    /// Per class: held out (0/1).
    held_out: Vec<u8>,
    /// Stored points; indices from here on are added points.
    stored: usize,
    /// View width and height; `x`, `y` are in tenths of these units, y down.
    view: [f32; 2],
    x: Vec<u16>,
    y: Vec<u16>,
    label: Vec<u32>,
    flags: Vec<u8>,
    /// Neighbours per point; `near`, `dist` hold `k` entries per point.
    k: usize,
    near: Vec<u32>,
    dist: Vec<f32>,
    /// Every path starts with `prefix`; `paths` holds the rest.
    prefix: String,
    paths: Vec<String>,
    sprite: Option<&'a SpriteInfo>,
    added_sprite: Option<&'a SpriteInfo>,
}

/// Width and height of the view's units.
const VIEW: (f32, f32) = (1000.0, 760.0);

/// Positions in tenths of the view's units: all points of `layouts` scaled together
/// into the view with a margin, y down (the layout's y up).
fn view_positions(layouts: &[&Matrix]) -> Vec<[u16; 2]> {
    let rows = || {
        layouts
            .iter()
            .flat_map(|m| (0..m.rows).map(move |i| m.row(i)))
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for r in rows().filter(|r| r[0].is_finite() && r[1].is_finite()) {
        (x0, x1, y0, y1) = (x0.min(r[0]), x1.max(r[0]), y0.min(r[1]), y1.max(r[1]));
    }
    let margin = 14.0;
    let scale = ((VIEW.0 - 2.0 * margin) / (x1 - x0).max(1e-6))
        .min((VIEW.1 - 2.0 * margin) / (y1 - y0).max(1e-6));
    let tenths = |v: f32, top: f32| (v * 10.0).round().clamp(0.0, top * 10.0) as u16;
    rows()
        .map(|r| {
            let x = margin + (r[0] - x0) * scale;
            let y = VIEW.1 - margin - (r[1] - y0) * scale;
            [tenths(x, VIEW.0), tenths(y, VIEW.1)]
        })
        .collect()
}

/// The longest prefix of every path that ends at a `/` (shared folders are written once).
fn common_folder(paths: &[String]) -> String {
    let Some(first) = paths.first() else {
        return String::new();
    };
    let mut len = first.len();
    for p in &paths[1..] {
        len = len.min(
            first
                .bytes()
                .zip(p.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    first[..len]
        .rfind('/')
        .map_or(String::new(), |i| first[..=i].to_string())
}

/// `k` neighbour indices and distances of a row, padded with its last entry.
fn fixed_row(row: &[(usize, f32)], k: usize, near: &mut Vec<u32>, dist: &mut Vec<f32>) {
    for j in 0..k {
        let (i, d) = row.get(j).or(row.last()).copied().unwrap_or((0, f32::NAN));
        near.push(i as u32);
        dist.push((d * 1e4).round() / 1e4);
    }
}

/// `f` when `on`, else no bit.
fn bit(on: bool, f: u8) -> u8 {
    if on {
        f
    } else {
        0
    }
}

/// The page's data columns. Long: one column after another, each a line or two.
fn map_data<'a>(data: &PhaseData, layout: &Matrix, page: &MapPage<'a>) -> MapData<'a> {
    let n = data.len();
    let mut classes = data.classes.clone();
    let mut layouts = vec![layout];
    let empty: Vec<String> = Vec::new();
    let added_classes = page.added.as_ref().map_or(&empty[..], |a| a.classes);
    if let Some(a) = &page.added {
        layouts.push(a.layout);
    }
    // Classes the map has not seen (an enrolled class) join the end of the list.
    let added_labels: Vec<u32> = added_classes
        .iter()
        .map(|c| match classes.iter().position(|k| k == c) {
            Some(i) => i as u32,
            None => {
                classes.push(c.clone());
                (classes.len() - 1) as u32
            }
        })
        .collect();
    let colours = (0..classes.len())
        .map(|c| css(class_colour(c, classes.len())))
        .collect();
    let xy = view_positions(&layouts);
    let k = page.neighbours.first().map_or(0, |r| r.len());
    let mut label: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
    label.extend(&added_labels);
    let mut flags: Vec<u8> = (0..n)
        .map(|i| {
            let nn = page.neighbours.get(i).and_then(|r| r.first());
            bit(data.split[i] == Split::Test, flag::TEST)
                | bit(data.unseen(i), flag::UNSEEN)
                | bit(page.gallery.get(i).copied().unwrap_or(false), flag::GALLERY)
                | bit(
                    nn.is_some_and(|&(j, _)| data.labels[j] == data.labels[i]),
                    flag::NN_CORRECT,
                )
        })
        .collect();
    let (mut near, mut dist) = (Vec::new(), Vec::new());
    for row in page.neighbours {
        fixed_row(row, k, &mut near, &mut dist);
    }
    let mut paths: Vec<String> = data.paths.iter().map(|p| p.display().to_string()).collect();
    if let Some(a) = &page.added {
        for (m, row) in a.near.iter().enumerate() {
            let correct = row
                .first()
                .is_some_and(|&(j, _)| data.class_name(j) == a.classes[m]);
            flags.push(flag::ADDED | bit(correct, flag::NN_CORRECT));
            fixed_row(row, k, &mut near, &mut dist);
        }
        paths.extend(a.paths.iter().cloned());
    }
    let prefix = common_folder(&paths);
    MapData {
        held_out: (0..classes.len())
            .map(|c| data.held_out.get(c).copied().unwrap_or(false) as u8)
            .collect(),
        classes,
        colours,
        stored: n,
        view: [VIEW.0, VIEW.1],
        x: xy.iter().map(|p| p[0]).collect(),
        y: xy.iter().map(|p| p[1]).collect(),
        label,
        flags,
        k,
        near,
        dist,
        paths: paths
            .iter()
            .map(|p| p[prefix.len()..].to_string())
            .collect(),
        prefix,
        sprite: page.sprite,
        added_sprite: page.added.as_ref().and_then(|a| a.sprite),
    }
}

/// The map page as HTML.
pub fn map_html(data: &PhaseData, layout: &Matrix, page: &MapPage) -> String {
    let map_data = map_data(data, layout, page);
    let mut present: Vec<usize> = map_data.label.iter().map(|&l| l as usize).collect();
    present.sort_unstable();
    present.dedup();
    let added = page.added.as_ref().map_or(0, |a| a.classes.len());
    let body = html! {
        h1 { (page.title) }
        p.muted { (page.facts) }
        p.muted {
            "■ train image · ▲ test image · black outline: held-out class"
            @if added > 0 { " · large ringed dots: " (added) " images added later (project --add, index add)" }
            ". Hover a point for its image and nearest neighbours; click to open its \
             gallery entry (or to link to the point); wheel or +/− to zoom, drag to pan, \
             shift-drag (or box select) to select a box, alt-drag (or lasso) to draw \
             a loop around what to select."
        }
        div.maptools {
            label { "colour by " select #colour-by {
                option value="class" { "class" }
                option value="split" { "split (train/test)" }
                option value="nn" { "nearest neighbour correct" }
            } }
            input #search type="search" placeholder="search class names" aria-label="search class names";
            span #search-info.muted {}
            button #zoom-in type="button" title="zoom in" { "+" }
            button #zoom-out type="button" title="zoom out" { "−" }
            button #zoom-reset type="button" { "reset view" }
            label { input #box-select type="checkbox"; " box select" }
            label { input #lasso-select type="checkbox"; " lasso" }
        }
        div.mapwrap {
            div #mapbox {
                canvas #map role="img" aria-label="embedding map" {}
                canvas #over aria-hidden="true" {}
            }
            aside #panel {
                div #thumb {}
                b #p-class { "hover a point" }
                div #p-split.muted {}
                div #p-path.muted {}
                div { "nearest in the embedding space:" }
                ol #p-near {}
            }
        }
        div #key.muted {}
        section #selection {
            h2 { "Selection" }
            p #sel-info.muted { "Shift-drag a box on the map (or tick box select), or alt-drag a loop (or tick \
                lasso), to list its images." }
            ol #sel-list {}
        }
        h2 { "Classes" }
        p.muted { "Click a class to highlight it; click again to clear." }
        div.legend {
            @for &c in &present {
                button.cls type="button" data-c=(c) {
                    // The colour is ours (`#rrggbb` from the palette), not user text.
                    span style={ "background:" (map_data.colours[c]) } {}
                    (map_data.classes[c])
                    @if map_data.held_out[c] == 1 { " ◯" }
                }
            }
        }
        script { "window.DMLVIZ_MAP=" (html::script_json(&map_data)) ";" }
        (html::script(MAP_SCRIPT))
    };
    html::page(&page.title, &page.nav, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::data::synthetic;
    use std::path::PathBuf;

    fn page_for(data: &PhaseData, added: Option<AddedPoints>) -> String {
        let n = data.len();
        let layout = Matrix::new(
            n,
            2,
            (0..2 * n)
                .map(|v| ((v * 7919) % 1000) as f32 / 10.0)
                .collect(),
        )
        .unwrap();
        let neighbours: Vec<Vec<(usize, f32)>> = (0..n)
            .map(|i| (1..=5).map(|k| ((i + k) % n, 0.1 * k as f32)).collect())
            .collect();
        let gallery: Vec<bool> = (0..n).map(|i| i % 50 == 0).collect();
        let sprite = SpriteInfo::for_points("sprite", n);
        let page = MapPage {
            title: "UMAP — <phase>".into(),
            facts: "facts & figures".into(),
            neighbours: &neighbours,
            gallery: &gallery,
            sprite: Some(&sprite),
            added,
            nav: vec![("tsne.html".into(), "t-SNE".into())],
        };
        map_html(data, &layout, &page)
    }

    /// The JSON object the page assigns to `window.DMLVIZ_MAP`.
    fn page_json(html: &str) -> serde_json::Value {
        let start = html.find("window.DMLVIZ_MAP=").unwrap() + "window.DMLVIZ_MAP=".len();
        let end = start + html[start..].find(";</script>").unwrap();
        serde_json::from_str(&html[start..end]).unwrap()
    }

    #[test]
    fn class_names_and_paths_cannot_inject_markup() {
        let mut data = synthetic(
            &["<script>alert(1)</script>", "cat & \"dog\"", "plain"],
            1,
            30,
            6,
            4,
        );
        data.paths[3] = PathBuf::from("</script><img src=x onerror=alert(2)>.png");
        let html = page_for(&data, None);
        assert!(
            !html.contains("<script>alert(1)"),
            "raw class name in the page"
        );
        assert!(!html.contains("<img src=x"), "raw path in the page");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "legend must show the escaped name"
        );
        assert!(html.contains("cat &amp; &quot;dog&quot;"));
        assert!(html.contains("<title>UMAP — &lt;phase&gt;</title>"));
        // Exactly the page's own scripts: the frame's sort script, the data and the map.
        assert_eq!(html.matches("<script>").count(), 3);
        assert_eq!(html.matches("</script>").count(), 3);
        let json = page_json(&html);
        assert_eq!(
            json["paths"][3].as_str().unwrap(),
            "</script><img src=x onerror=alert(2)>.png",
            "the path survives, escaped, in the data"
        );
    }

    #[test]
    fn hundred_thousand_points_are_columns_not_elements() {
        let classes: Vec<String> = (0..100).map(|c| format!("class {c}")).collect();
        let names: Vec<&str> = classes.iter().map(|s| s.as_str()).collect();
        let mut data = synthetic(&names, 20, 80_000, 20_000, 2);
        for (i, p) in data.paths.iter_mut().enumerate() {
            *p = PathBuf::from(format!("/data/sop/images/{}/{i}.jpg", i % 100));
        }
        let html = page_for(&data, None);
        assert_eq!(
            html.matches("<canvas").count(),
            2,
            "one bitmap and its overlay"
        );
        assert!(!html.contains("data-i="), "no element per point");
        assert_eq!(
            html.matches("data-c=").count(),
            100,
            "one legend entry per class"
        );
        // 100 000 points with 5 neighbours each: columns keep it under 90 bytes a point
        // (the neighbour indices and distances are most of it).
        assert!(html.len() < 9_000_000, "page is {} bytes", html.len());
        let json = page_json(&html);
        assert_eq!(json["prefix"], "/data/sop/images/");
        assert_eq!(json["paths"][101], "1/101.jpg");
        assert_eq!(json["x"].as_array().unwrap().len(), 100_000);
        assert_eq!(json["near"].as_array().unwrap().len(), 500_000);
        assert_eq!(json["near"][5], 2, "point 1's first neighbour");
        let flags = json["flags"].as_array().unwrap();
        assert_eq!(
            flags[0].as_u64().unwrap() as u8 & flag::GALLERY,
            flag::GALLERY
        );
        assert_eq!(
            flags[80_000].as_u64().unwrap() as u8 & flag::TEST,
            flag::TEST
        );
        assert!(json["x"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_u64().unwrap() <= 10_000));
        assert!(json["y"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_u64().unwrap() <= 7_600));
        assert_eq!(json["sprite"]["sheets"], 25);
    }

    #[test]
    fn added_points_join_the_view_and_bring_their_class() {
        let data = synthetic(&["a", "b"], 0, 10, 2, 2);
        let added_layout = Matrix::new(1, 2, vec![1000.0, 1000.0]).unwrap();
        let near = vec![vec![(1usize, 0.5f32), (3, 0.7)]];
        let added = AddedPoints {
            layout: &added_layout,
            classes: &["new <class>".to_string()],
            paths: &["new/x.png".to_string()],
            near: &near,
            sprite: None,
        };
        let html = page_for(&data, Some(added));
        let json = page_json(&html);
        assert_eq!(json["stored"], 12);
        assert_eq!(json["classes"][2], "new <class>");
        assert_eq!(json["label"][12], 2);
        assert_eq!(
            json["flags"][12].as_u64().unwrap() as u8 & flag::ADDED,
            flag::ADDED
        );
        // The added point is far out, so it is the rightmost and reaches the top margin.
        let x: Vec<u64> = json["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(x[..12].iter().all(|&v| v < x[12] / 5), "{x:?}");
        assert_eq!(json["y"][12], 140);
        // Padded to k = 5 neighbours with the last one.
        assert_eq!(json["near"].as_array().unwrap()[60..65], [1, 3, 3, 3, 3]);
        assert!(html.contains("new &lt;class&gt;"));
        assert!(html.contains("1 images added later"));
    }

    #[test]
    fn common_folder_ends_at_a_slash() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(common_folder(&p(&["a/b/cat.png", "a/b/car.png"])), "a/b/");
        assert_eq!(common_folder(&p(&["a/x.png", "b/x.png"])), "");
        assert_eq!(common_folder(&p(&["only/one.png"])), "only/");
        assert_eq!(common_folder(&[]), "");
    }
}
