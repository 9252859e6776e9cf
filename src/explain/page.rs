//! The HTML page of one explanation: the image, each map (heat map and overlay), the
//! k nearest training images with class, distance and pair maps, and the majority-vote
//! prediction (marked right or wrong when the true class is known). Every user string is
//! escaped, every link relative.

use super::explainer::{ExplanationRecord, MapRecord};
use super::map::MapStatus;
use crate::html::{escape, page, url};

const EXTRA_CSS: &str = "<style>.maps figure img{width:224px;image-rendering:auto}.blank{width:224px;height:224px;display:flex;align-items:center;justify-content:center;background:#c8c8c8;color:#333;font-size:.85em;text-align:center;padding:8px}table.nb img{width:112px}</style>";

/// One map's figure: its PNGs, or a labelled blank for a degenerate map.
pub fn map_figures(title: &str, m: &MapRecord, prefix: &str) -> String {
    if m.status != MapStatus::Ok {
        return format!(
            "<figure><div class=\"blank\">{}</div><figcaption>{}: {}</figcaption></figure>",
            escape(m.status.describe()),
            escape(title),
            escape(m.status.name())
        );
    }
    m.files
        .iter()
        .map(|f| {
            let kind = if f.ends_with("-overlay.png") {
                "overlay"
            } else {
                "map"
            };
            format!(
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{} ({kind})</figcaption></figure>",
                url(&format!("{prefix}{f}")),
                escape(title),
                escape(title)
            )
        })
        .collect()
}

/// The body of an explanation page (`prefix` is prepended to every file name, for pages
/// that embed several explanations).
pub fn explanation_body(r: &ExplanationRecord, prefix: &str) -> String {
    let mut b = String::new();
    let verdict = match r.correct {
        Some(true) => " <span class=\"ok\">✓ correct</span>".to_string(),
        Some(false) => " <span class=\"bad\">✗ wrong</span>".to_string(),
        None => String::new(),
    };
    b.push_str(&format!(
        "<p><b>Image:</b> {} — <b>true class:</b> {} — <b>predicted (majority of {}):</b> {} ({} votes){verdict} — nearest: {}</p>",
        escape(&r.image.display().to_string()),
        escape(r.true_class.as_deref().unwrap_or("unknown")),
        r.neighbours.iter().filter(|n| n.role == "neighbour").count(),
        escape(&r.predicted),
        r.votes,
        escape(&r.nearest)
    ));
    let target = match r.target.kind.as_str() {
        "nearest" => format!(
            "its nearest training image{}",
            r.target
                .class
                .as_deref()
                .map(|c| format!(" ({})", escape(c)))
                .unwrap_or_default()
        ),
        "class" => format!(
            "the centroid of class {}",
            escape(r.target.class.as_deref().unwrap_or(""))
        ),
        _ => format!(
            "the reference image {}",
            escape(
                &r.target
                    .path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        ),
    };
    b.push_str(&format!(
        "<p class=\"muted\">Score explained: cosine similarity of the embedding to {target} = {:.4}.</p>",
        r.target.score
    ));
    b.push_str(&format!(
        "<div class=\"grid maps\"><figure><img src=\"{}\" alt=\"input\"><figcaption>network input</figcaption></figure></div>",
        url(&format!("{prefix}{}", r.input_png))
    ));
    for m in super::METHODS {
        let info = m.info();
        if let Some(rec) = r.maps.get(info.name) {
            b.push_str(&format!(
                "<h2>{}</h2><div class=\"grid maps\">{}</div>",
                escape(info.title),
                map_figures(info.title, rec, prefix)
            ));
        }
    }
    b.push_str("<h2>Nearest training images and similarity decomposition</h2><table class=\"sortable nb\"><thead><tr><th class=\"num\">#</th><th>image</th><th>class</th><th class=\"num\">distance</th><th>pair: explained image</th><th>pair: neighbour</th><th class=\"num\">pooled cosine</th></tr></thead><tbody>");
    for (j, n) in r.neighbours.iter().enumerate() {
        let same = r.true_class.as_ref().map(|c| *c == n.class);
        let cls = match same {
            Some(true) => " class=\"ok\"",
            Some(false) => " class=\"bad\"",
            None => "",
        };
        let pair_cell = |m: Option<&MapRecord>| match m {
            Some(m) if m.status == MapStatus::Ok => {
                let f = m.files.last().cloned().unwrap_or_default();
                format!(
                    "<img src=\"{}\" alt=\"pair map\">",
                    url(&format!("{prefix}{f}"))
                )
            }
            Some(m) => escape(m.status.describe()),
            None => String::new(),
        };
        let rank = if n.role == "reference" {
            "ref".to_string()
        } else {
            format!(
                "{}",
                j + 1
                    - r.neighbours
                        .iter()
                        .take(j)
                        .filter(|x| x.role == "reference")
                        .count()
            )
        };
        b.push_str(&format!(
            "<tr><td class=\"num\">{rank}</td><td><img src=\"{}\" alt=\"neighbour\" title=\"{}\"></td><td{cls}>{}</td><td class=\"num\">{:.4}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            url(&format!("{prefix}{}", n.thumbnail)),
            escape(&n.path.display().to_string()),
            escape(&n.class),
            n.distance,
            pair_cell(n.pair.as_ref().map(|p| &p.query)),
            pair_cell(n.pair.as_ref().map(|p| &p.neighbour)),
            n.pair.as_ref().map(|p| format!("{:.4}", p.similarity)).unwrap_or_default(),
        ));
    }
    b.push_str("</tbody></table>");
    b
}

/// The complete page of one explanation.
pub fn explanation_page(r: &ExplanationRecord, title: &str, nav: &[(String, String)]) -> String {
    let body = format!(
        "<h1>{}</h1>{}<h2>Methods</h2><p class=\"muted\">{}</p>",
        escape(title),
        explanation_body(r, ""),
        escape(&super::registry::notes())
    );
    page(title, nav, EXTRA_CSS, &body)
}

/// The page's extra stylesheet (for pages embedding explanation bodies).
pub fn extra_css() -> &'static str {
    EXTRA_CSS
}
