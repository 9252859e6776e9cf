//! The interactive HTML map and its thumbnail sprite sheet.
//!
//! The page is static and self-contained (works from `file://`, no server, no CDN):
//! points are SVG elements carrying only a `data-i` index; everything else (classes,
//! neighbours, paths) is one JSON object read by one delegated `mouseover` and one
//! `click` handler on the SVG — no per-point listeners, so 10 000 points stay
//! responsive. Hover thumbnails come from one sprite sheet (`sprite.jpg`, cells of at
//! most 64 px, row-major by point index) shown with CSS `background-position`.
//! Text reaches the page through maud (which escapes it) or `textContent`, and the
//! JSON through [`html::script_json`], so class names and paths cannot inject markup.

use super::data::{PhaseData, Split};
use super::input::Matrix;
use crate::chart::{class_colour, css};
use crate::html;
use image::{Rgb, RgbImage};
use maud::{html, Markup};
use rayon::prelude::*;
use serde::Serialize;
use std::path::PathBuf;

/// Layout of the sprite sheet (`sprite.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpriteInfo {
    /// Side of a square cell, pixels.
    pub cell: u32,
    /// Cells per row.
    pub columns: u32,
    /// Rows of cells.
    pub rows: u32,
    /// Number of cells used: one per point, in point order, row-major.
    pub count: usize,
}

impl SpriteInfo {
    /// Cell size for `n` points: 64 px up to 1 000 points, 48 up to 4 000, else 32
    /// (the sheet stays under 4 000 px a side at 10 000 points).
    pub fn for_points(n: usize) -> SpriteInfo {
        let cell = if n <= 1000 {
            64
        } else if n <= 4000 {
            48
        } else {
            32
        };
        let columns = ((n as f64).sqrt().ceil() as u32).max(1);
        let rows = (n as u32).div_ceil(columns).max(1);
        SpriteInfo {
            cell,
            columns,
            rows,
            count: n,
        }
    }
}

/// Thumbnails of `paths` (at most `side` pixels), decoded in parallel; an image that
/// cannot be read becomes a grey square, so a moved dataset still gives a map.
pub fn load_thumbnails(paths: &[PathBuf], side: u32) -> (Vec<RgbImage>, usize) {
    let thumbs: Vec<Option<RgbImage>> = paths
        .par_iter()
        .map(|p| {
            let image = crate::data::decode::decode_rgb(p).ok()?;
            Some(crate::imaging::shrink(&image, side))
        })
        .collect();
    let missing = thumbs.iter().filter(|t| t.is_none()).count();
    (
        thumbs
            .into_iter()
            .map(|t| t.unwrap_or_else(|| RgbImage::from_pixel(side, side, Rgb([200, 200, 200]))))
            .collect(),
        missing,
    )
}

/// The sprite sheet: each thumbnail letterboxed into its square cell.
pub fn sprite_sheet(thumbs: &[RgbImage], info: &SpriteInfo) -> RgbImage {
    let mut sheet = RgbImage::from_pixel(
        info.columns * info.cell,
        info.rows * info.cell,
        Rgb([255, 255, 255]),
    );
    for (i, t) in thumbs.iter().enumerate() {
        let cell = crate::imaging::square(t, info.cell);
        let (x, y) = (
            (i as u32 % info.columns) * info.cell,
            (i as u32 / info.columns) * info.cell,
        );
        image::imageops::overlay(&mut sheet, &cell, x as i64, y as i64);
    }
    sheet
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
    /// The sprite sheet beside the page, when thumbnails were made.
    pub sprite: Option<SpriteInfo>,
    /// Other pages to link (relative href, label).
    pub nav: Vec<(String, String)>,
}

#[derive(Serialize)]
struct MapData<'a> {
    classes: &'a [String],
    colours: Vec<String>,
    /// Per point: label, split (0 train, 1 test), held out (0/1), gallery (0/1).
    points: Vec<[i64; 4]>,
    /// Per point: x, y in the SVG's user units.
    xy: Vec<[f32; 2]>,
    /// Per point: neighbour indices.
    near: Vec<Vec<usize>>,
    /// Per point: neighbour distances (4 decimals).
    dist: Vec<Vec<f32>>,
    paths: Vec<String>,
    sprite: Option<SpriteInfo>,
}

/// Width and height of the SVG's user space.
const VIEW: (f32, f32) = (1000.0, 760.0);

const MAP_SCRIPT: &str = r#"
(function(){
var D=window.DMLVIZ_MAP;
var svg=document.getElementById('map'),hl=document.getElementById('hl');
var el=function(id){return document.getElementById(id)};
function show(i){
  var p=D.points[i];if(!p)return;
  el('p-class').textContent=D.classes[p[0]];
  el('p-split').textContent=(p[1]?'test':'train')+(p[2]?' · held-out class':'')+(p[3]?' · in the galleries':'');
  el('p-path').textContent=D.paths[i];
  var t=el('thumb');
  if(D.sprite){var s=D.sprite,c=i%s.columns,r=Math.floor(i/s.columns),k=64/s.cell;
    t.style.backgroundImage='url(sprite.jpg)';t.style.backgroundSize=(s.columns*s.cell*k)+'px '+(s.rows*s.cell*k)+'px';
    t.style.backgroundPosition=(-c*64)+'px '+(-r*64)+'px';}
  var ol=el('p-near');while(ol.firstChild)ol.removeChild(ol.firstChild);
  D.near[i].forEach(function(j,n){var li=document.createElement('li');
    li.textContent=D.classes[D.points[j][0]]+' ('+(D.points[j][1]?'test':'train')+') — '+D.dist[i][n];ol.appendChild(li);});
  hl.setAttribute('cx',D.xy[i][0]);hl.setAttribute('cy',D.xy[i][1]);hl.setAttribute('r',7);
}
function index(e){var v=e.target.getAttribute&&e.target.getAttribute('data-i');return v===null||v===undefined?-1:+v}
svg.addEventListener('mouseover',function(e){var i=index(e);if(i>=0)show(i)});
svg.addEventListener('click',function(e){var i=index(e);if(i<0)return;
  if(D.points[i][3])location.href='../galleries/index.html#q'+i;else location.hash='p'+i;});
function fromHash(){var m=/^#p(\d+)$/.exec(location.hash);if(m)show(+m[1])}
window.addEventListener('hashchange',fromHash);fromHash();
})();
"#;

/// Point positions in the SVG's user space: the layout scaled into the view with a
/// margin, y up, rounded to 0.1.
fn view_positions(layout: &Matrix, n: usize) -> Vec<[f32; 2]> {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
    );
    for i in 0..n {
        x0 = x0.min(layout.row(i)[0]);
        x1 = x1.max(layout.row(i)[0]);
        y0 = y0.min(layout.row(i)[1]);
        y1 = y1.max(layout.row(i)[1]);
    }
    let margin = 14.0;
    let scale = ((VIEW.0 - 2.0 * margin) / (x1 - x0).max(1e-6))
        .min((VIEW.1 - 2.0 * margin) / (y1 - y0).max(1e-6));
    (0..n)
        .map(|i| {
            let x = margin + (layout.row(i)[0] - x0) * scale;
            let y = VIEW.1 - margin - (layout.row(i)[1] - y0) * scale; // y up
            [(x * 10.0).round() / 10.0, (y * 10.0).round() / 10.0]
        })
        .collect()
}

/// The SVG of the points: training images as circles, test images as triangles drawn
/// on top, held-out classes outlined. Each point carries only its index (`data-i`).
fn points_svg(data: &PhaseData, xy: &[[f32; 2]], colours: &[String]) -> Markup {
    let n = data.len();
    let r = if n > 5000 {
        2.5
    } else if n > 1000 {
        3.5
    } else {
        4.5
    };
    let s = r * 1.5;
    let triangle = |[x, y]: [f32; 2]| {
        format!(
            "M{x} {:.1}l{:.1} {:.1}h{:.1}z",
            y - s,
            s * 0.9,
            s * 1.6,
            -s * 1.8
        )
    };
    let of = |pass: Split| (0..n).filter(move |&i| data.split[i] == pass);
    // SVG elements are closed explicitly: in HTML, `<circle>` without `/>` or an end
    // tag would swallow the points after it.
    html! {
        svg #map viewBox={ "0 0 " (VIEW.0) " " (VIEW.1) } xmlns="http://www.w3.org/2000/svg"
            role="img" aria-label="embedding map" {
            g {
                @for i in of(Split::Train) {
                    circle data-i=(i) cx=(xy[i][0]) cy=(xy[i][1]) r=(r)
                        fill=(colours[data.labels[i] as usize]) class=[data.unseen(i).then_some("u")] {}
                }
                @for i in of(Split::Test) {
                    path data-i=(i) d=(triangle(xy[i])) fill=(colours[data.labels[i] as usize])
                        class=[data.unseen(i).then_some("u")] {}
                }
            }
            circle #hl r="0" cx="-10" cy="-10" {}
        }
    }
}

/// The map page as HTML.
pub fn map_html(data: &PhaseData, layout: &Matrix, page: &MapPage) -> String {
    let n = data.len();
    let n_classes = data.classes.len();
    let xy = view_positions(layout, n);
    let colours: Vec<String> = (0..n_classes)
        .map(|c| css(class_colour(c, n_classes)))
        .collect();
    let svg = points_svg(data, &xy, &colours);
    let map_data = MapData {
        classes: &data.classes,
        colours: colours.clone(),
        points: (0..n)
            .map(|i| {
                [
                    data.labels[i],
                    (data.split[i] == Split::Test) as i64,
                    data.unseen(i) as i64,
                    page.gallery.get(i).copied().unwrap_or(false) as i64,
                ]
            })
            .collect(),
        xy,
        near: page
            .neighbours
            .iter()
            .map(|row| row.iter().map(|&(j, _)| j).collect())
            .collect(),
        dist: page
            .neighbours
            .iter()
            .map(|row| row.iter().map(|&(_, d)| (d * 1e4).round() / 1e4).collect())
            .collect(),
        paths: data.paths.iter().map(|p| p.display().to_string()).collect(),
        sprite: page.sprite,
    };
    let mut present: Vec<usize> = data.labels.iter().map(|&l| l as usize).collect();
    present.sort_unstable();
    present.dedup();
    let body = html! {
        h1 { (page.title) }
        p.muted { (page.facts) }
        p.muted {
            "● train image · ▲ test image · black outline: held-out class · hover a point for \
             its image and nearest neighbours; click to open its gallery entry (or to link to \
             the point)."
        }
        div.mapwrap {
            (svg)
            aside #panel {
                div #thumb {}
                b #p-class { "hover a point" }
                div #p-split.muted {}
                div #p-path.muted {}
                div { "nearest in the embedding space:" }
                ol #p-near {}
            }
        }
        h2 { "Classes" }
        div.legend {
            @for &c in &present {
                div {
                    // The colour is ours (`#rrggbb` from the palette), not user text.
                    span style={ "background:" (colours[c]) } {}
                    (data.classes[c])
                    @if data.held_out[c] { " ◯" }
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

    fn page_for(data: &PhaseData) -> String {
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
        let page = MapPage {
            title: "UMAP — <phase>".into(),
            facts: "facts & figures".into(),
            neighbours: &neighbours,
            gallery: &gallery,
            sprite: Some(SpriteInfo::for_points(n)),
            nav: vec![("tsne.html".into(), "t-SNE".into())],
        };
        map_html(data, &layout, &page)
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
        let html = page_for(&data);
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
        // Exactly the page's own scripts: the frame's sort script, the data and the handler.
        assert_eq!(html.matches("<script>").count(), 3);
        assert_eq!(html.matches("</script>").count(), 3);
    }

    #[test]
    fn ten_thousand_points_stay_light_and_delegated() {
        let classes: Vec<String> = (0..100).map(|c| format!("class {c}")).collect();
        let names: Vec<&str> = classes.iter().map(|s| s.as_str()).collect();
        let data = synthetic(&names, 20, 8000, 2000, 8);
        let html = page_for(&data);
        assert_eq!(
            html.matches("data-i=\"").count(),
            10_000,
            "one SVG element per point"
        );
        assert!(html.len() < 3_000_000, "page is {} bytes", html.len());
        // One delegated handler per event, no per-point listeners or inline handlers.
        assert_eq!(html.matches("svg.addEventListener('mouseover'").count(), 1);
        assert_eq!(html.matches("svg.addEventListener('click'").count(), 1);
        assert_eq!(html.matches("addEventListener('mouseover'").count(), 1);
        assert!(!html.contains("onmouseover") && !html.contains("onclick"));
        assert!(html.contains("../galleries/index.html#q"));
        let sprite = SpriteInfo::for_points(10_000);
        assert_eq!((sprite.cell, sprite.columns, sprite.rows), (32, 100, 100));
        assert!(sprite.cell <= 64 && sprite.columns * sprite.cell <= 8192);
    }

    #[test]
    fn sprite_cells_follow_point_order() {
        let thumbs: Vec<RgbImage> = (0..5u8)
            .map(|i| RgbImage::from_pixel(10, 10, Rgb([i * 50, 0, 0])))
            .collect();
        let info = SpriteInfo::for_points(5);
        assert_eq!((info.columns, info.rows), (3, 2));
        let sheet = sprite_sheet(&thumbs, &info);
        assert_eq!(sheet.dimensions(), (3 * 64, 2 * 64));
        // Point 4: column 1, row 1; the thumbnail is centred in its cell.
        assert_eq!(sheet.get_pixel(64 + 32, 64 + 32), &Rgb([200, 0, 0]));
        let (thumbs, missing) = load_thumbnails(&[PathBuf::from("no/such.png")], 32);
        assert_eq!((missing, thumbs[0].dimensions()), (1, (32, 32)));
    }
}
