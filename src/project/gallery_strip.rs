//! A gallery entry's thumbnails as HTML: the query, then its neighbours, each a cell of
//! the gallery's tiled sheets shown as a CSS background, framed blue (the query), green
//! (a neighbour of its class) or red, with class and distance as text under it.
//!
//! Cells of shared sheets instead of one picture per query: a training image that many
//! queries share is downloaded once, and the text is the page's (escaped, searchable,
//! sharp at any zoom), not pixels in a JPEG — which was most of a contact sheet's bytes.

use crate::html;
use crate::run::galleries::{GalleryItem, GalleryThumbs};
use maud::{html, Markup};

/// Cell side on the galleries page, pixels (the sheets' cells are at least 64 px).
pub const PAGE_CELL: u32 = 64;
/// Cell side in the run page's gallery figures: eleven cells fit its 560 px figure.
pub const FIGURE_CELL: u32 = 40;

/// The inline style of a `display`-px box showing cell `cell` of `thumbs` (scaled from
/// the sheets' cell size); `base` is the galleries folder's href from the page, empty or
/// ending in `/`. `None` for a cell the sheets do not hold.
fn cell_style(thumbs: &GalleryThumbs, cell: usize, base: &str, display: u32) -> Option<String> {
    let sprite = &thumbs.sprite;
    if cell >= sprite.count || sprite.cell == 0 {
        return None;
    }
    let (sheet, column, row) = sprite.locate(cell);
    // The sheet scaled so that one of its cells is `display` px wide.
    let width = u64::from(sprite.columns) * u64::from(display);
    // Safe in CSS `url()`: `html::url` leaves only [A-Za-z0-9-_.~/%].
    let href = html::url(&format!("{base}{}{}", thumbs.dir, sprite.sheet_name(sheet)));
    Some(format!(
        "width:{display}px;height:{display}px;background-image:url({href});\
         background-size:{width}px auto;background-position:-{}px -{}px",
        u64::from(column) * u64::from(display),
        u64::from(row) * u64::from(display),
    ))
}

/// One framed thumbnail: `frame` is the CSS class of its border, `title` its tooltip,
/// `caption` the lines under it (none in compact strips).
fn thumb(
    thumbs: &GalleryThumbs,
    cell: Option<usize>,
    base: &str,
    display: u32,
    frame: &str,
    title: &str,
    caption: Option<(&str, &str)>,
) -> Markup {
    let style = cell
        .and_then(|c| cell_style(thumbs, c, base, display))
        .unwrap_or_else(|| format!("width:{display}px;height:{display}px"));
    html! {
        figure style={ "width:" (display + 8) "px" } {
            span class={ "thumb " (frame) } style=(style) role="img" title=(title)
                aria-label=(title) {}
            @if let Some((first, second)) = caption {
                figcaption {
                    span class=(frame) title=(first) { (first) } br;
                    span.muted { (second) }
                }
            }
        }
    }
}

/// The strip of `item`: its query, then its neighbours nearest first. `base` is the
/// galleries folder's href from the page (empty or ending in `/`), `display` the cell
/// side in pixels; `captions` adds each cell's class and distance under it.
pub fn strip(
    item: &GalleryItem,
    thumbs: &GalleryThumbs,
    base: &str,
    display: u32,
    captions: bool,
) -> Markup {
    let kind = if item.unseen {
        "held-out class"
    } else {
        "test image"
    };
    let query = format!("query: {}", item.true_class);
    html! {
        div.strip {
            (thumb(thumbs, item.cell, base, display, "query", &format!("{query} ({kind})"),
                captions.then_some((query.as_str(), kind))))
            @for (r, n) in item.neighbours.iter().enumerate() {
                @let label = format!("{}. {}", r + 1, n.class);
                @let distance = format!("d = {:.4}", n.distance);
                (thumb(thumbs, n.cell, base, display,
                    if n.correct { "same" } else { "other" },
                    &format!("{label}, {distance}"),
                    captions.then_some((label.as_str(), distance.as_str()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::galleries::{GalleryNeighbour, Query};
    use crate::run::projections::SpriteInfo;

    fn item(cells: [Option<usize>; 3]) -> GalleryItem {
        let neighbour = |class: &str, correct, cell| GalleryNeighbour {
            path: "x.png".into(),
            class: class.into(),
            distance: 0.25,
            correct,
            cell,
        };
        GalleryItem {
            id: "q4".into(),
            query: Query::Path("q.png".into()),
            true_class: "<a>".into(),
            predicted: "<a>".into(),
            majority: "<a>".into(),
            correct: true,
            unseen: true,
            sheet: String::new(),
            cell: cells[0],
            neighbours: vec![
                neighbour("<a>", true, cells[1]),
                neighbour("b & c", false, cells[2]),
            ],
            top_classes: Vec::new(),
        }
    }

    #[test]
    fn cells_point_into_their_sheet_at_the_displayed_scale() {
        // 5 000 cells of 64 px: 32 columns a sheet, 1 024 cells a sheet.
        let thumbs = GalleryThumbs {
            sprite: SpriteInfo::with_cell("sprite", 5000, 64),
            dir: "../projections/".into(),
        };
        assert_eq!((thumbs.sprite.columns, thumbs.sprite.rows), (32, 32));
        // Cell 1 024 + 33: sheet 1, column 1, row 1; shown at 40 px.
        let style = cell_style(&thumbs, 1024 + 33, "g/", 40).unwrap();
        assert!(
            style.contains("url(g/../projections/sprite-1.jpg)"),
            "{style}"
        );
        assert!(style.contains("background-size:1280px auto"), "{style}");
        assert!(style.contains("background-position:-40px -40px"), "{style}");
        assert!(cell_style(&thumbs, 5000, "", 40).is_none());
    }

    #[test]
    fn strips_frame_by_verdict_escape_classes_and_mark_missing_cells() {
        let thumbs = GalleryThumbs {
            sprite: SpriteInfo::with_cell("thumbs", 3, 64),
            dir: String::new(),
        };
        let html = strip(&item([Some(0), Some(2), None]), &thumbs, "", 64, true).into_string();
        assert_eq!(html.matches("<figure").count(), 3);
        let frames: Vec<&str> = ["thumb query", "thumb same", "thumb other"]
            .into_iter()
            .filter(|f| html.contains(f))
            .collect();
        assert_eq!(frames.len(), 3, "{html}");
        assert!(html.contains("query: &lt;a&gt;") && !html.contains("<a>"));
        assert!(html.contains("2. b &amp; c") && html.contains("d = 0.2500"));
        assert_eq!(html.matches("background-image").count(), 2, "{html}");
        let compact = strip(&item([Some(0), Some(1), Some(2)]), &thumbs, "", 40, false);
        assert!(!compact.into_string().contains("figcaption"));
    }
}
