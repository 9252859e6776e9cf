//! The HTML page of one explanation: the image, each map (heat map and overlay), the
//! k nearest training images with class, distance and pair maps, and the majority-vote
//! prediction (marked right or wrong when the true class is known). Every user string is
//! escaped, every link relative.

use super::explainer::{ExplanationRecord, MapRecord, Method};
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
    for m in Method::ALL {
        if let Some(rec) = r.maps.get(m.name()) {
            b.push_str(&format!(
                "<h2>{}</h2><div class=\"grid maps\">{}</div>",
                escape(m.title()),
                map_figures(m.title(), rec, prefix)
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
        "<h1>{}</h1>{}{}",
        escape(title),
        explanation_body(r, ""),
        METHOD_NOTES_HTML
    );
    page(title, nav, EXTRA_CSS, &body)
}

/// The page's extra stylesheet (for pages embedding explanation bodies).
pub fn extra_css() -> &'static str {
    EXTRA_CSS
}

/// What each method shows, for pages.
pub const METHOD_NOTES: &str = "Grad-CAM: channel weights = spatial mean of the gradient of the cosine similarity (to the target) w.r.t. the last conv activation; ReLU of the weighted sum, scaled to [0,1], resized bilinearly. \
Transferred Grad-CAM (Chen et al.): the weights are the mean of the stored Grad-CAM weights of the nearest training images; no backward pass. \
Similarity decomposition (Stylianou et al.): per-location share of the pooled-feature cosine similarity of the pair, for each image. \
Vanilla backprop: max over colour channels of |gradient w.r.t. the pixels|. Guided backprop: gradient with the ReLU/ReLU6 rule R·1[x>0]·1[R>0] (ReLU6: 0<x<6); guided Grad-CAM: guided gradient × Grad-CAM; both shown as (x−mean)/(std+1e-5)·0.1+0.5 clipped. \
Overlays: JET colormap blended 50/50 with the image. Grey blanks mark constant or all-zero maps (e.g. a dead target).";

const METHOD_NOTES_HTML: &str = "<h2>Methods</h2><p class=\"muted\">Grad-CAM: channel weights = spatial mean of the gradient of the cosine similarity (to the target) w.r.t. the last conv activation; ReLU of the weighted sum, scaled to [0,1], resized bilinearly. Transferred Grad-CAM (Chen et al.): weights averaged from the stored Grad-CAM weights of the nearest training images, no backward pass. Similarity decomposition (Stylianou et al.): per-location share of the pooled-feature cosine similarity of a pair, for each image. Vanilla backprop: max over colour channels of |∂score/∂pixel|. Guided backprop: the ReLU/ReLU6 rule R·1[x&gt;0]·1[R&gt;0] (ReLU6: 0&lt;x&lt;6); guided Grad-CAM: guided gradient × Grad-CAM; both shown as (x−mean)/(std+1e-5)·0.1+0.5 clipped. Overlays: JET blended 50/50 with the image. Grey blanks mark constant or all-zero maps.</p>";
