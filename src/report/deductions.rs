//! The user's "deductions" for a run: a `deductions.md` file the user writes in the
//! run directory (`runs/X/deductions.md`), shown on the run's page and in the
//! comparison table, like the reference README's Deductions column.
//!
//! Only a small, safe subset of Markdown is rendered: `#` headings, `-`/`*` bullet
//! lists, paragraphs separated by blank lines, `**bold**` and `` `code` ``. Every
//! other character is text: the file is escaped before any markup is added, so no
//! HTML from the file reaches the page.

use crate::html::escape;
use std::path::Path;

/// File name of the deductions inside a run directory.
pub const FILE_NAME: &str = crate::run::DEDUCTIONS_FILE;

/// Reads `deductions.md` of a run, if present and not blank.
pub fn read(run_root: &Path, problems: &mut Vec<String>) -> Option<String> {
    super::read::read_text(&run_root.join(FILE_NAME), problems).filter(|t| !t.trim().is_empty())
}

/// Inline markup of one line: escaped text with `**bold**` and `` `code` `` spans.
fn inline(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_str();
    while !rest.is_empty() {
        let code = rest.find('`');
        let bold = rest.find("**");
        match (code, bold) {
            (Some(c), b) if b.map_or(true, |b| c < b) => {
                if let Some(end) = rest[c + 1..].find('`') {
                    out.push_str(&rest[..c]);
                    out.push_str("<code>");
                    out.push_str(&rest[c + 1..c + 1 + end]);
                    out.push_str("</code>");
                    rest = &rest[c + 2 + end..];
                } else {
                    out.push_str(rest);
                    break;
                }
            }
            (_, Some(b)) => {
                if let Some(end) = rest[b + 2..].find("**") {
                    out.push_str(&rest[..b]);
                    out.push_str("<b>");
                    out.push_str(&rest[b + 2..b + 2 + end]);
                    out.push_str("</b>");
                    rest = &rest[b + 4 + end..];
                } else {
                    out.push_str(rest);
                    break;
                }
            }
            _ => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

/// Renders the Markdown subset to HTML (see the module documentation).
pub fn to_html(markdown: &str) -> String {
    let mut out = String::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut in_list = false;
    let flush = |out: &mut String, paragraph: &mut Vec<&str>| {
        if !paragraph.is_empty() {
            out.push_str(&format!(
                "<p>{}</p>\n",
                paragraph
                    .iter()
                    .map(|l| inline(l.trim()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
            paragraph.clear();
        }
    };
    for line in markdown.lines() {
        let trimmed = line.trim();
        let item = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "));
        if item.is_none() && in_list && (trimmed.is_empty() || !line.starts_with(' ')) {
            out.push_str("</ul>\n");
            in_list = false;
        }
        if let Some(item) = item {
            flush(&mut out, &mut paragraph);
            if !in_list {
                out.push_str("<ul>\n");
                in_list = true;
            }
            out.push_str(&format!("<li>{}</li>\n", inline(item)));
        } else if trimmed.is_empty() {
            flush(&mut out, &mut paragraph);
        } else if trimmed.starts_with('#') {
            flush(&mut out, &mut paragraph);
            out.push_str(&format!(
                "<h4>{}</h4>\n",
                inline(trimmed.trim_start_matches('#').trim())
            ));
        } else if in_list {
            // A continuation line of the last item.
            let at = out.rfind("</li>").unwrap_or(out.len());
            out.insert_str(at, &format!(" {}", inline(trimmed)));
        } else {
            paragraph.push(trimmed);
        }
    }
    flush(&mut out, &mut paragraph);
    if in_list {
        out.push_str("</ul>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_subset() {
        let html = to_html(
            "# Verdict\n- SGD **generalises** better\n- see `lr`\n\nA paragraph\non two lines.\n",
        );
        assert_eq!(
            html,
            "<h4>Verdict</h4>\n<ul>\n<li>SGD <b>generalises</b> better</li>\n<li>see <code>lr</code></li>\n</ul>\n<p>A paragraph on two lines.</p>\n"
        );
    }

    #[test]
    fn markup_in_the_file_is_escaped() {
        let html = to_html("<script>alert('x')</script> & **<b>**\n- <img src=x onerror=alert(1)>");
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; <b>&lt;b&gt;</b>"),
            "{html}"
        );
    }

    #[test]
    fn unclosed_markers_stay_text() {
        assert_eq!(to_html("a ** b ` c"), "<p>a ** b ` c</p>\n");
    }
}
