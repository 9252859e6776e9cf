//! HTML building blocks shared by every page dmlviz writes (explanations, embedding
//! maps, galleries, the report site, the study page).
//!
//! Pages are [maud] templates: every value interpolated into `html! { … }` is
//! escaped by its type, so a class name or a path is text whatever it holds. Raw HTML
//! is an explicit opt-in, `maud::PreEscaped`, kept to a few places that hold no user
//! text (our stylesheet and scripts, SVG written by an escaping writer, JSON encoded by
//! [`script_json`]); `tests/raw_html.rs` fails on a `PreEscaped` anywhere else.
//!
//! What a page needs from here:
//! - [`page`]: the frame (head, the one stylesheet, the header's links, the sort script)
//!   around a body built with `html!`;
//! - [`url`]: a relative path for `href`/`src`, percent-encoded;
//! - [`script_json`] and [`script`]: data and code inside `<script>`;
//! - [`join`]: markup with a text separator (links in a line);
//! - [`escape`]: the same escaping as maud's, for code that looks for escaped text.

use maud::{html, Markup, PreEscaped, DOCTYPE};

/// The site's one stylesheet (`assets/site.css`), inlined into every page so pages are
/// self-contained and work from `file://` with no CDN or external font.
pub const STYLESHEET: &str = include_str!("../assets/site.css");

/// A small script that makes every `table.sortable` sortable by clicking a header
/// (numbers numerically, text alphabetically). Pages work without it.
pub const SORT_SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var body=t.tBodies[0];if(!body)return;
      var asc=th.getAttribute('aria-sort')!=='ascending';
      t.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      var rows=Array.prototype.slice.call(body.rows);
      var key=function(r){var c=r.cells[i];if(!c)return '';var v=c.getAttribute('data-sort');if(v===null)v=c.textContent.trim();var n=parseFloat(v);return isNaN(n)||!/^[-+]?[0-9.]/.test(v)?v.toLowerCase():n};
      rows.sort(function(a,b){var x=key(a),y=key(b);if(typeof x!==typeof y){x=String(x);y=String(y)}return (x<y?-1:x>y?1:0)*(asc?1:-1)});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"#;

/// Escapes text exactly as maud does for element content and double-quoted attribute
/// values (`&`, `<`, `>`, `"`). Pages never call it (maud escapes what they
/// interpolate); it is for code that searches a written page for a value.
pub fn escape(text: &str) -> String {
    html! { (text) }.into_string()
}

/// Percent-encodes a relative path for use in `href`/`src` (each segment encoded, `/`
/// kept), so paths with spaces, `#`, `?`, quotes or non-ASCII names still resolve from
/// `file://` and static hosts. The result holds only `[A-Za-z0-9-_.~/%]`.
pub fn url(relative_path: &str) -> String {
    let mut out = String::with_capacity(relative_path.len());
    for b in relative_path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A value as JSON for a `<script>` block: every `<` is written `\u003c` (the same
/// string to JavaScript), so no `</script>` or `<!--` in a class name or path can end
/// the script early; JSON outside strings holds no `<`.
pub fn script_json<T: serde::Serialize>(value: &T) -> Markup {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    // Safe: JSON from serde_json with every `<` escaped, so it cannot leave the script.
    PreEscaped(json.replace('<', "\\u003c"))
}

/// A `<script>` element running `code`: our own JavaScript, a compile-time constant.
pub fn script(code: &'static str) -> Markup {
    // Safe: `code` is a `&'static str` constant of this crate, never user text.
    html! { script { (PreEscaped(code)) } }
}

/// `items` one after another with the text `separator` between them (a line of links).
pub fn join(items: impl IntoIterator<Item = Markup>, separator: &str) -> Markup {
    html! {
        @for (i, item) in items.into_iter().enumerate() {
            @if i > 0 { (separator) }
            (item)
        }
    }
}

/// A complete HTML page around `body`: `title` and the labels of `nav` (relative href,
/// label) in the header are escaped here like everything maud interpolates.
pub fn page(title: &str, nav: &[(String, String)], body: Markup) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // Safe: the stylesheet is a file of this crate, included at compile time.
                style { (PreEscaped(STYLESHEET)) }
            }
            body {
                header.site {
                    b { "dmlviz" } " "
                    @for (href, label) in nav {
                        a href=(url(href)) { (label) }
                    }
                }
                main { (body) }
                (script(SORT_SCRIPT))
            }
        }
    };
    page.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b>"cat" & 'dog'</b>"#),
            "&lt;b&gt;&quot;cat&quot; &amp; 'dog'&lt;/b&gt;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn urls_keep_slashes_and_encode_the_rest() {
        assert_eq!(url("a b/c#d?.png"), "a%20b/c%23d%3F.png");
        assert_eq!(url("é\"<'&"), "%C3%A9%22%3C%27%26");
    }

    #[test]
    fn json_cannot_close_the_script() {
        let value = vec!["</script><script>alert(1)</script>", "<!-- x"];
        let s = script_json(&value).into_string();
        assert!(!s.contains('<'), "{s}");
        let back: Vec<String> = serde_json::from_str(&s).unwrap();
        assert_eq!(
            back, value,
            "the escaped JSON must decode to the same strings"
        );
    }

    #[test]
    fn page_escapes_the_title_and_nav_and_keeps_the_body() {
        let p = page(
            "<x>",
            &[("a b.html".into(), "<y>".into())],
            html! { p { "body & " b { "bold" } } },
        );
        assert!(p.starts_with("<!DOCTYPE html>"), "{p}");
        assert!(p.contains("<title>&lt;x&gt;</title>"), "{p}");
        assert!(p.contains("href=\"a%20b.html\">&lt;y&gt;</a>"), "{p}");
        assert!(
            p.contains("<main><p>body &amp; <b>bold</b></p></main>"),
            "{p}"
        );
        assert!(p.contains(".kpi b{display:block") && p.contains("table.sortable"));
        assert_eq!(p.matches("<script>").count(), 1, "only the sort script");
    }

    #[test]
    fn join_separates_items_with_escaped_text() {
        let links = ["a", "b", "c"].map(|l| html! { a href=(url(l)) { (l) } });
        assert_eq!(
            join(links, " & ").into_string(),
            "<a href=\"a\">a</a> &amp; <a href=\"b\">b</a> &amp; <a href=\"c\">c</a>"
        );
        assert_eq!(join(Vec::new(), " · ").into_string(), "");
    }
}
