//! HTML tables: the sortable table used on every report page, and the run's CSV
//! tables (`all_classes_metrics`, classification reports, comparisons) turned into
//! it. Numbers are shown rounded and sorted by their full value (`data-sort`).

use maud::{html, Markup};
use std::path::Path;

/// One table cell: its markup, an optional sort key, and whether it is numeric.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Cell content (built with `html!`, so its text is escaped).
    pub html: Markup,
    /// Sort key when it differs from the text (full-precision numbers).
    pub sort: Option<String>,
    /// Right-aligned numeric cell.
    pub numeric: bool,
}

impl Cell {
    /// A text cell.
    pub fn text(text: &str) -> Cell {
        Cell {
            html: html! { (text) },
            sort: None,
            numeric: false,
        }
    }

    /// A cell of markup (links, several lines), sorted by `sort`.
    pub fn html(html: Markup, sort: &str) -> Cell {
        Cell {
            html,
            sort: Some(sort.to_string()),
            numeric: false,
        }
    }

    /// A number shown with `decimals` decimals (as is when it is an integer), sorted
    /// by its full value; `None` shows a dash and sorts last.
    pub fn number(value: Option<f64>, decimals: usize) -> Cell {
        let shown = match value {
            Some(v) if v.is_finite() => format_number(v, decimals),
            Some(v) => v.to_string(),
            None => "–".into(),
        };
        Cell {
            html: html! { (shown) },
            sort: Some(match value.filter(|v| v.is_finite()) {
                Some(v) => format!("{v}"),
                None => "-1e308".into(),
            }),
            numeric: true,
        }
    }

    /// A share in [0, 1] shown as a percentage with one decimal.
    pub fn percent(value: Option<f64>) -> Cell {
        match value.filter(|v| v.is_finite()) {
            Some(v) => Cell {
                html: html! { (percent(Some(v))) },
                sort: Some(format!("{v}")),
                numeric: true,
            },
            None => Cell::number(None, 0),
        }
    }
}

/// A number with `decimals` decimals, or as an integer when it is one.
pub fn format_number(v: f64, decimals: usize) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.decimals$}")
    }
}

/// The narrow no-break space between a number and its `%`.
pub const PERCENT_SPACE: char = '\u{202F}';

/// A percentage of a share in [0, 1] (`54.8 %`, with a narrow no-break space), or `–`.
/// Plain text: interpolate it into `html!` like any other string.
pub fn percent(value: Option<f64>) -> String {
    value
        .filter(|v| v.is_finite())
        .map(|v| format!("{:.1}{PERCENT_SPACE}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// A sortable HTML table (`class` added to `sortable`); a column is numeric
/// (right-aligned) when every row's cell in it is.
pub fn html_table(headers: &[&str], rows: &[Vec<Cell>], class: &str) -> Markup {
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| !rows.is_empty() && rows.iter().all(|r| r.get(i).is_none_or(|c| c.numeric)))
        .collect();
    html! {
        table class={ "sortable " (class) } {
            thead {
                tr {
                    @for (h, &num) in headers.iter().zip(&numeric) {
                        th class=[num.then_some("num")] { (h) }
                    }
                }
            }
            tbody {
                @for row in rows {
                    tr {
                        @for cell in row {
                            td class=[cell.numeric.then_some("num")] data-sort=[cell.sort.as_deref()] {
                                (cell.html)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Parses CSV as the eval layer writes it (it lives beside the writer).
pub use crate::eval::report::parse_csv;

/// Which columns of a CSV table hold shares in [0, 1] shown as numbers with 3 decimals.
fn cell_for(value: &str) -> Cell {
    match value.trim().parse::<f64>() {
        Ok(v) if !value.trim().is_empty() => Cell::number(Some(v), 3),
        _ => Cell::text(value),
    }
}

/// A CSV file as a sortable HTML table, its first row the headers; `None` when the
/// file is absent, a note naming the file when it cannot be read.
pub fn csv_table(path: &Path, class: &str) -> Option<Markup> {
    if !path.exists() {
        return None;
    }
    let parsed = std::fs::read_to_string(path)
        .map_err(anyhow::Error::from)
        .and_then(|t| parse_csv(&t));
    let rows = match parsed {
        Ok(rows) if !rows.is_empty() => rows,
        Ok(_) => return Some(html! { p.note { (path.display()) " is empty." } }),
        Err(e) => return Some(html! { p.note { (path.display()) ": " (format!("{e:#}")) } }),
    };
    let headers: Vec<&str> = rows[0].iter().map(String::as_str).collect();
    let body: Vec<Vec<Cell>> = rows[1..]
        .iter()
        .map(|r| r.iter().map(|v| cell_for(v)).collect())
        .collect();
    Some(html_table(&headers, &body, class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_fields() {
        let rows = parse_csv("class,p\n\"a, \"\"b\"\"\",0.5\r\nc,1\n").unwrap();
        assert_eq!(
            rows,
            vec![vec!["class", "p"], vec!["a, \"b\"", "0.5"], vec!["c", "1"]]
        );
        assert!(parse_csv("\"open").is_err());
        assert_eq!(parse_csv("a,b").unwrap(), vec![vec!["a", "b"]]);
    }

    #[test]
    fn csv_tables_escape_class_names_and_sort_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "class,precision_at_1\n<b>&x,0.123456\nplain,1\n").unwrap();
        let html = csv_table(&path, "wide").unwrap().into_string();
        assert!(html.contains("<td>&lt;b&gt;&amp;x</td>"), "{html}");
        assert!(html.contains("data-sort=\"0.123456\">0.123</td>"), "{html}");
        assert!(
            html.contains("<th class=\"num\">precision_at_1</th>"),
            "{html}"
        );
        assert!(csv_table(&dir.path().join("absent.csv"), "").is_none());
    }

    #[test]
    fn missing_numbers_show_a_dash() {
        assert_eq!(Cell::number(None, 3).html.0, "–");
        assert_eq!(Cell::percent(Some(0.5477)).html.0, "54.8\u{202F}%");
        assert_eq!(Cell::number(Some(3.0), 3).html.0, "3");
        assert_eq!(Cell::number(Some(f64::INFINITY), 3).html.0, "inf");
    }
}
