//! The HTML pages of explanations: one explanation (the image, each map as heat map
//! and overlay, the k nearest training images with class, distance and pair maps, and
//! the majority-vote prediction, marked right or wrong when the true class is known),
//! a phase's sample of explanations, and the index of a folder's explanations. Pages
//! are maud templates, so every class name and path is escaped; every link is relative.

use super::explainer::{ExplanationRecord, MapRecord};
use super::input::Unreadable;
use super::map::MapStatus;
use crate::html::{page, url};
use maud::{html, Markup};

/// One map's figure: its PNGs, or a labelled blank for a degenerate map.
pub fn map_figures(title: &str, m: &MapRecord, prefix: &str) -> Markup {
    if m.status != MapStatus::Ok {
        return html! {
            figure {
                div.blank { (m.status.describe()) }
                figcaption { (title) ": " (m.status.name()) }
            }
        };
    }
    html! {
        @for f in &m.files {
            @let kind = if f.ends_with("-overlay.png") { "overlay" } else { "map" };
            figure {
                img src=(url(&format!("{prefix}{f}"))) alt=(title);
                figcaption { (title) " (" (kind) ")" }
            }
        }
    }
}

/// What the similarity score of an explanation is measured against, in words.
fn target_text(r: &ExplanationRecord) -> String {
    match r.target.kind.as_str() {
        "nearest" => format!(
            "its nearest training image{}",
            r.target
                .class
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ),
        "class" => format!(
            "the centroid of class {}",
            r.target.class.as_deref().unwrap_or("")
        ),
        _ => format!(
            "the reference image {}",
            r.target
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    }
}

/// The body of an explanation page (`prefix` is prepended to every file name, for pages
/// that embed several explanations).
pub fn explanation_body(r: &ExplanationRecord, prefix: &str) -> Markup {
    let voters = r
        .neighbours
        .iter()
        .filter(|n| n.role == "neighbour")
        .count();
    html! {
        p {
            b { "Image:" } " " (r.image.display())
            " — " b { "true class:" } " " (r.true_class.as_deref().unwrap_or("unknown"))
            " — " b { "predicted (majority of " (voters) "):" } " " (r.predicted)
            " (" (r.votes) " votes)"
            @match r.correct {
                Some(true) => { " " span.ok { "✓ correct" } },
                Some(false) => { " " span.bad { "✗ wrong" } },
                None => {},
            }
            " — nearest: " (r.nearest)
        }
        p.muted {
            "Score explained: cosine similarity of the embedding to " (target_text(r))
            " = " (format!("{:.4}", r.target.score)) "."
        }
        @if let Some(note) = &r.layer_note {
            p.bad { (note) }
        }
        div.grid.saliency {
            figure {
                img src=(url(&format!("{prefix}{}", r.input_png))) alt="input";
                figcaption { "network input" }
            }
        }
        @for info in super::METHODS.iter().map(|m| m.info()) {
            @if let Some(rec) = r.maps.get(info.name) {
                h2 { (info.title) }
                div.grid.saliency { (map_figures(info.title, rec, prefix)) }
            }
        }
        h2 { "Nearest training images and similarity decomposition" }
        (neighbour_table(r, prefix))
    }
}

/// The table of an explanation's nearest training images, with their pair maps.
fn neighbour_table(r: &ExplanationRecord, prefix: &str) -> Markup {
    let pair_cell = |m: Option<&MapRecord>| match m {
        Some(m) if m.status == MapStatus::Ok => {
            let f = m.files.last().cloned().unwrap_or_default();
            html! { img src=(url(&format!("{prefix}{f}"))) alt="pair map"; }
        }
        Some(m) => html! { (m.status.describe()) },
        None => html! {},
    };
    let mut references = 0;
    html! {
        table.sortable.nb {
            thead {
                tr {
                    th.num { "#" } th { "image" } th { "class" } th.num { "distance" }
                    th { "pair: explained image" } th { "pair: neighbour" }
                    th.num { "pooled cosine" }
                }
            }
            tbody {
                @for (j, n) in r.neighbours.iter().enumerate() {
                    @let same = r.true_class.as_ref().map(|c| *c == n.class);
                    @let rank = if n.role == "reference" {
                        references += 1;
                        "ref".to_string()
                    } else {
                        (j + 1 - references).to_string()
                    };
                    tr {
                        td.num { (rank) }
                        td {
                            img src=(url(&format!("{prefix}{}", n.thumbnail))) alt="neighbour"
                                title=(n.path.display());
                        }
                        td class=[same.map(|s| if s { "ok" } else { "bad" })] { (n.class) }
                        td.num { (format!("{:.4}", n.distance)) }
                        td { (pair_cell(n.pair.as_ref().map(|p| &p.query))) }
                        td { (pair_cell(n.pair.as_ref().map(|p| &p.neighbour))) }
                        td.num {
                            @if let Some(p) = &n.pair {
                                (format!("{:.4}", p.similarity))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What each method computes, under the heading "Methods".
fn method_notes() -> Markup {
    html! {
        h2 { "Methods" }
        p.muted { (super::registry::notes()) }
    }
}

/// The complete page of one explanation.
pub fn explanation_page(r: &ExplanationRecord, title: &str, nav: &[(String, String)]) -> String {
    let body = html! {
        h1 { (title) }
        (explanation_body(r, ""))
        (method_notes())
    };
    page(title, nav, body)
}

/// One explanation of a sample page: its folder (relative to the page, holding its own
/// page and PNGs), its class and whether the phase trained without that class.
pub struct SampleSection<'a> {
    /// The explanation's folder, relative to the sample page.
    pub dir: &'a str,
    /// The image's class.
    pub true_class: &'a str,
    /// Whether the phase's model was trained without the class.
    pub unseen_class: bool,
    /// The explanation.
    pub record: &'a ExplanationRecord,
}

/// The page of a phase's sample of explanations (`explanations/index.html`): `summary`
/// says what the sample is (plain text), then each explanation in full, numbered.
pub fn samples_page(
    title: &str,
    nav: &[(String, String)],
    summary: &str,
    sections: &[SampleSection],
) -> String {
    let body = html! {
        h1 { (title) }
        p { (summary) }
        p.muted { (super::registry::notes()) }
        @for (i, s) in sections.iter().enumerate() {
            section {
                h2 id=(s.dir) {
                    a href=(url(&format!("{}/index.html", s.dir))) { (i + 1) ". " (s.true_class) }
                    " "
                    @if s.unseen_class {
                        span.muted { "(class held out of training)" }
                    }
                }
                (explanation_body(s.record, &format!("{}/", s.dir)))
            }
        }
    };
    page(title, nav, body)
}

/// One image of a folder's explanations page: its folder (relative to the page) and
/// its explanation.
pub struct FolderEntry<'a> {
    /// The explanation's folder, relative to the folder page.
    pub dir: &'a str,
    /// The explanation.
    pub record: &'a ExplanationRecord,
}

/// The index page of `dmlviz explain --batch`: one sortable row per image, with its
/// input, a preview map (Grad-CAM when there is one), the prediction and the verdict;
/// then the files that could not be read, with the reason.
pub fn folder_page(title: &str, entries: &[FolderEntry], skipped: &[Unreadable]) -> String {
    let body = html! {
        h1 { (title) }
        table.sortable {
            thead {
                tr {
                    th { "image" } th { "input" } th { "map" } th { "predicted" }
                    th { "true class" } th { "✓" }
                }
            }
            tbody {
                @for e in entries {
                    @let r = e.record;
                    @let preview = r
                        .maps
                        .get("gradcam")
                        .or_else(|| r.maps.values().next())
                        .and_then(|m| m.files.last());
                    tr {
                        td { a href=(url(&format!("{}/index.html", e.dir))) { (r.image.display()) } }
                        td { img src=(url(&format!("{}/{}", e.dir, r.input_png))) width="96" alt="input"; }
                        td {
                            @if let Some(p) = preview {
                                img src=(url(&format!("{}/{p}", e.dir))) width="96" alt="map";
                            }
                        }
                        td { (r.predicted) }
                        td { (r.true_class.as_deref().unwrap_or("unknown")) }
                        td {
                            @match r.correct {
                                Some(true) => span.ok { "✓" },
                                Some(false) => span.bad { "✗" },
                                None => {},
                            }
                        }
                    }
                }
            }
        }
        @if !skipped.is_empty() {
            h2 { "Skipped (unreadable)" }
            ul {
                @for s in skipped {
                    li { (s.path.display()) ": " (s.reason) }
                }
            }
        }
    };
    page(title, &[], body)
}
