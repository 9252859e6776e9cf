//! HTML building blocks shared by every page dmlviz writes (explanations, embedding
//! maps, galleries, the report site): escaping of user strings and one page frame
//! with the site's inline stylesheet, so pages are self-contained and work from
//! `file://` with no CDN or external font.

/// Escapes text for HTML element content and quoted attribute values
/// (`&`, `<`, `>`, `"`, `'`). Every user string (class names, paths) goes through this.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a relative path for use in `href`/`src` (each segment encoded,
/// `/` kept), then HTML-escapes it. Paths with spaces, `#`, `?` or non-ASCII names
/// still resolve from `file://` and static hosts.
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
    escape(&out)
}

/// Escapes text for embedding inside a `<script>` block as JSON: `</` and `<!--`
/// cannot close the script early.
pub fn script_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--")
}

/// The site's stylesheet, inlined into every page.
pub const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#fff;--panel:#f6f7f9;--ok:#1a7f37;--bad:#c62828;--accent:#2454c5}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg);margin:0}
main{max-width:1200px;margin:0 auto;padding:18px 22px 60px}
header.site{background:#1d2330;color:#fff;padding:10px 22px}
header.site a{color:#cfe0ff;margin-right:16px;text-decoration:none}
h1{font-size:1.6em;margin:.4em 0}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}h3{font-size:1.05em}
a{color:var(--accent)}
.muted{color:var(--muted)}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--panel)}
td.num,th.num{text-align:right}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}
table.sortable th[aria-sort=descending]::after{content:" ▼"}
.scroll{overflow:auto;max-height:520px;border:1px solid var(--line)}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;display:inline-block;vertical-align:top}
figcaption{font-size:.85em;color:var(--muted);max-width:240px;overflow-wrap:anywhere}
img{max-width:100%;height:auto}
.ok{color:var(--ok)}.bad{color:var(--bad)}
.border-ok{border:3px solid var(--ok)}.border-bad{border:3px solid var(--bad)}
.kpi{display:inline-block;background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 14px;margin:0 8px 8px 0}
.kpi b{display:block;font-size:1.4em}
.note{background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:8px 12px}
pre{background:var(--panel);padding:10px;overflow:auto;border:1px solid var(--line)}
"#;

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

/// A complete HTML page: `title` is escaped here; `body` and `head_extra` must
/// already be HTML (built with [`escape`]). `nav` is a list of (relative href,
/// label) links shown in the page header.
pub fn page(title: &str, nav: &[(String, String)], head_extra: &str, body: &str) -> String {
    let links: String = nav
        .iter()
        .map(|(href, label)| format!("<a href=\"{}\">{}</a>", url(href), escape(label)))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n{head_extra}\n</head>\n<body>\n<header class=\"site\"><b>dmlviz</b> {links}</header>\n<main>\n{body}\n</main>\n<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n",
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b>"cat" & 'dog'</b>"#),
            "&lt;b&gt;&quot;cat&quot; &amp; &#39;dog&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn urls_keep_slashes_and_encode_the_rest() {
        assert_eq!(url("a b/c#d?.png"), "a%20b/c%23d%3F.png");
        assert_eq!(url("é\"<"), "%C3%A9%22%3C");
    }

    #[test]
    fn json_cannot_close_the_script() {
        let s = script_json(&vec!["</script><script>alert(1)</script>"]);
        assert!(!s.contains("</script>"), "{s}");
    }

    #[test]
    fn page_escapes_the_title_and_nav() {
        let p = page(
            "<x>",
            &[("a b.html".into(), "<y>".into())],
            "",
            "<p>body</p>",
        );
        assert!(p.contains("<title>&lt;x&gt;</title>"));
        assert!(p.contains("href=\"a%20b.html\">&lt;y&gt;</a>"));
        assert!(p.contains("<p>body</p>"));
    }
}
