//! Checks a generated site: every `href` and `src` of every HTML page under a
//! folder must be relative and resolve to a file inside the site (and to an element
//! id, for links with a `#fragment` into an HTML page). Used by `dmlviz report`
//! after writing and by the tests.

use std::path::{Path, PathBuf};

/// A link or image that does not resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenLink {
    /// The page holding it.
    pub page: PathBuf,
    /// The attribute value as written.
    pub target: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {:?}: {}",
            self.page.display(),
            self.target,
            self.reason
        )
    }
}

/// Undoes the HTML escaping of an attribute value.
fn unescape(value: &str) -> String {
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Decodes `%XX` sequences (UTF-8), as a browser does for a relative link.
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The values of the `name="…"` attributes in a page, unescaped.
fn attribute_values<'a>(html: &'a str, name: &str) -> impl Iterator<Item = String> + 'a {
    let attr = format!(" {name}=\"");
    let mut rest = html;
    std::iter::from_fn(move || {
        let at = rest.find(&attr)?;
        rest = &rest[at + attr.len()..];
        let end = rest.find('"')?;
        let value = unescape(&rest[..end]);
        rest = &rest[end..];
        Some(value)
    })
}

/// The values of `href="…"` and `src="…"` attributes in a page, then each distinct
/// `url(…)` of its `style="…"` attributes (gallery thumbnails are CSS
/// backgrounds, which a check of image elements does not see).
pub fn links(html: &str) -> Vec<String> {
    let mut out: Vec<String> = attribute_values(html, "href")
        .chain(attribute_values(html, "src"))
        .collect();
    let mut styled = std::collections::BTreeSet::new();
    for style in attribute_values(html, "style") {
        let mut rest = style.as_str();
        while let Some(at) = rest.find("url(") {
            rest = &rest[at + 4..];
            let Some(end) = rest.find(')') else { break };
            styled.insert(rest[..end].trim_matches(['"', '\'']).to_string());
            rest = &rest[end..];
        }
    }
    out.extend(styled);
    out
}

/// True when a page defines the element id (or anchor name) `id`.
fn has_id(html: &str, id: &str) -> bool {
    let escaped = crate::html::escape(id);
    html.contains(&format!("id=\"{escaped}\""))
        || html.contains(&format!("name=\"{escaped}\""))
        || html.contains(&format!("id='{escaped}'"))
}

/// Every HTML file under `dir`, sorted.
pub fn html_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Checks one link of `page` (inside `root`).
fn check_link(root: &Path, page: &Path, page_html: &str, target: &str) -> Option<String> {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("javascript:")
        || lower.starts_with("mailto:")
        || lower.starts_with("data:")
    {
        return None;
    }
    if lower.contains("://") || lower.starts_with("//") {
        return Some("not a relative link (the site must work offline)".into());
    }
    if target.starts_with('/') {
        return Some("absolute path (the site must work from any folder)".into());
    }
    let (path_part, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let path_part = path_part.split('?').next().unwrap_or("");
    if path_part.is_empty() {
        let id = percent_decode(fragment.unwrap_or(""));
        return (!id.is_empty() && !has_id(page_html, &id))
            .then(|| format!("no element with id {id:?} on the page"));
    }
    let resolved = page
        .parent()
        .unwrap_or(root)
        .join(percent_decode(path_part));
    let Ok(canonical) = resolved.canonicalize() else {
        return Some("target does not exist".into());
    };
    if !root.canonicalize().is_ok_and(|r| canonical.starts_with(r)) {
        return Some("target is outside the site".into());
    }
    if canonical.is_dir() {
        return (!canonical.join("index.html").is_file())
            .then(|| "folder without index.html".into());
    }
    if let (Some(id), true) = (
        fragment.map(percent_decode).filter(|f| !f.is_empty()),
        canonical.extension().is_some_and(|x| x == "html"),
    ) {
        let html = std::fs::read_to_string(&canonical).unwrap_or_default();
        if !has_id(&html, &id) {
            return Some(format!("no element with id {id:?} in the target page"));
        }
    }
    None
}

/// Checks every link and image of every HTML page under `root`.
pub fn check_site(root: &Path) -> Vec<BrokenLink> {
    let mut broken = Vec::new();
    for page in html_files(root) {
        let html = std::fs::read_to_string(&page).unwrap_or_default();
        for target in links(&html) {
            if let Some(reason) = check_link(root, &page, &html, &target) {
                broken.push(BrokenLink {
                    page: page.clone(),
                    target,
                    reason,
                });
            }
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_broken_external_and_absolute_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a b")).unwrap();
        std::fs::write(root.join("a b/x&y.png"), b"").unwrap();
        std::fs::write(root.join("a b/p.html"), "<p id=\"q1\">").unwrap();
        std::fs::write(
            root.join("index.html"),
            "<a href=\"a%20b/x&amp;y.png\">ok</a><a href=\"a%20b/p.html#q1\">ok</a><a href=\"#top\">self</a><h1 id=\"top\"></h1>\
             <img src=\"gone.png\"><a href=\"https://cdn.example/x.js\">x</a><a href=\"/etc/passwd\">y</a><a href=\"a%20b/p.html#q2\">z</a>\
             <span style=\"width:4px;background-image:url(a%20b/x&amp;y.png)\"></span><span style=\"background:url(sheet-1.jpg) -4px 0\"></span>",
        )
        .unwrap();
        let broken = check_site(root);
        let mut targets: Vec<&str> = broken.iter().map(|b| b.target.as_str()).collect();
        targets.sort();
        assert_eq!(
            targets,
            vec![
                "/etc/passwd",
                "a%20b/p.html#q2",
                "gone.png",
                "https://cdn.example/x.js",
                "sheet-1.jpg"
            ],
            "{broken:?}"
        );
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("a%20b%C3%A9"), "a bé");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%é"), "%é");
    }
}
