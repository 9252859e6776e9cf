//! The user's "deductions" for a run: a `deductions.md` file the user writes in the
//! run directory (`runs/X/deductions.md`), shown on the run's page and in the
//! comparison table, like the reference README's Deductions column.
//!
//! Only a small, safe subset of Markdown is rendered: `#` headings, `-`/`*` bullet
//! lists, paragraphs separated by blank lines, `**bold**` and `` `code` ``. Every
//! other character is text: the file is parsed into blocks and spans of plain text,
//! which the template escapes, so no HTML from the file reaches the page.

use maud::{html, Markup};
use std::path::Path;

/// File name of the deductions inside a run directory.
pub const FILE_NAME: &str = crate::run::DEDUCTIONS_FILE;

/// Reads `deductions.md` of a run, if present and not blank.
pub fn read(run_root: &Path, problems: &mut Vec<String>) -> Option<String> {
    super::read::read_text(&run_root.join(FILE_NAME), problems).filter(|t| !t.trim().is_empty())
}

/// A run of text with its inline markup.
#[derive(Debug, Clone, PartialEq)]
enum Span<'a> {
    Text(&'a str),
    Bold(&'a str),
    Code(&'a str),
}

/// One block of the file.
#[derive(Debug, Clone, PartialEq)]
enum Block<'a> {
    Heading(Vec<Span<'a>>),
    /// Items, each its lines' spans (continuation lines joined by a space).
    List(Vec<Vec<Span<'a>>>),
    /// The paragraph's lines' spans, joined by a space.
    Paragraph(Vec<Span<'a>>),
}

/// Splits one line into text, `**bold**` and `` `code` `` spans; an unclosed marker
/// stays text.
fn spans(line: &str) -> Vec<Span<'_>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let code = rest.find('`');
        let bold = rest.find("**");
        let (at, marker, open) = match (code, bold) {
            (Some(c), b) if b.is_none_or(|b| c < b) => (c, "`", 1),
            (_, Some(b)) => (b, "**", 2),
            _ => break,
        };
        let Some(end) = rest[at + open..].find(marker) else {
            break;
        };
        if at > 0 {
            out.push(Span::Text(&rest[..at]));
        }
        let inner = &rest[at + open..at + open + end];
        out.push(if open == 1 {
            Span::Code(inner)
        } else {
            Span::Bold(inner)
        });
        rest = &rest[at + 2 * open + end..];
    }
    if !rest.is_empty() {
        out.push(Span::Text(rest));
    }
    out
}

/// Appends a line's spans to `to`, a space first when `to` already holds some.
fn join_line<'a>(to: &mut Vec<Span<'a>>, line: &'a str) {
    if !to.is_empty() {
        to.push(Span::Text(" "));
    }
    to.extend(spans(line));
}

/// Parses the Markdown subset into blocks (see the module documentation).
fn blocks(markdown: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut paragraph: Vec<Span> = Vec::new();
    let mut in_list = false;
    for line in markdown.lines() {
        let trimmed = line.trim();
        let item = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "));
        if item.is_none() && in_list && (trimmed.is_empty() || !line.starts_with(' ')) {
            in_list = false;
        }
        let ends_paragraph = item.is_some() || trimmed.is_empty() || trimmed.starts_with('#');
        if ends_paragraph && !paragraph.is_empty() {
            out.push(Block::Paragraph(std::mem::take(&mut paragraph)));
        }
        if let Some(item) = item {
            if !in_list {
                out.push(Block::List(Vec::new()));
                in_list = true;
            }
            if let Some(Block::List(items)) = out.last_mut() {
                items.push(spans(item));
            }
        } else if trimmed.starts_with('#') {
            in_list = false;
            out.push(Block::Heading(spans(
                trimmed.trim_start_matches('#').trim(),
            )));
        } else if trimmed.is_empty() {
            // A blank line only ends the paragraph or list (done above).
        } else if in_list {
            // A continuation line of the last item.
            if let Some(Block::List(items)) = out.last_mut() {
                if let Some(last) = items.last_mut() {
                    join_line(last, trimmed);
                }
            }
        } else {
            join_line(&mut paragraph, trimmed);
        }
    }
    if !paragraph.is_empty() {
        out.push(Block::Paragraph(paragraph));
    }
    out
}

fn render_spans(spans: &[Span]) -> Markup {
    html! {
        @for span in spans {
            @match span {
                Span::Text(t) => (t),
                Span::Bold(t) => b { (t) },
                Span::Code(t) => code { (t) },
            }
        }
    }
}

/// Renders the Markdown subset (see the module documentation); all text of the file
/// is escaped, only the subset's own tags are markup.
pub fn to_html(markdown: &str) -> Markup {
    html! {
        @for block in blocks(markdown) {
            @match &block {
                Block::Heading(s) => h4 { (render_spans(s)) },
                Block::Paragraph(s) => p { (render_spans(s)) },
                Block::List(items) => ul {
                    @for item in items {
                        li { (render_spans(item)) }
                    }
                },
            }
        }
    }
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
            html.into_string(),
            "<h4>Verdict</h4><ul><li>SGD <b>generalises</b> better</li><li>see <code>lr</code></li>\
             </ul><p>A paragraph on two lines.</p>"
        );
        let continued = to_html("- one\n  more\n- two\nafter").into_string();
        assert_eq!(
            continued,
            "<ul><li>one more</li><li>two</li></ul><p>after</p>"
        );
    }

    #[test]
    fn markup_in_the_file_is_escaped() {
        let html = to_html("<script>alert('x')</script> & **<b>**\n- <img src=x onerror=alert(1)>")
            .into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; <b>&lt;b&gt;</b>"),
            "{html}"
        );
    }

    #[test]
    fn unclosed_markers_stay_text() {
        assert_eq!(to_html("a ** b ` c").into_string(), "<p>a ** b ` c</p>");
        assert_eq!(
            to_html("a `b **c**").into_string(),
            "<p>a `b **c**</p>",
            "an unclosed code marker leaves the rest of the line as text"
        );
    }
}
