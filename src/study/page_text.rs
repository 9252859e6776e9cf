//! The study page's wording: `page.toml` in the grid directory. What the page claims
//! about the grid (its substitutions, the questions it answers and with which rows)
//! lives beside the grid it describes, not in the code; the code only lays it out.
//!
//! Text is plain: it is escaped on the page, and a span between backticks is set as
//! code. Without `page.toml` the page has a plain title and no questions.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::Path;

/// The file name inside the grid directory.
pub const PAGE_FILE: &str = "page.toml";

/// `page.toml`: the study page's title, notes and questions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageText {
    /// The page's heading.
    #[serde(default = "default_title")]
    pub title: String,
    /// Opening sentence; the page adds the grid's facts (datasets, runs, seeds) after it.
    #[serde(default)]
    pub intro: String,
    /// A highlighted note below the intro (substitutions, caveats).
    #[serde(default)]
    pub note: Option<String>,
    /// Heading of the questions' table.
    #[serde(default = "default_questions_title")]
    pub questions_title: String,
    /// The questions the study answers, one table row each.
    #[serde(default, rename = "question")]
    pub questions: Vec<Question>,
    /// Heading and explanation of the kNN-versus-logits table.
    #[serde(default)]
    pub tradeoff: Option<TradeoffText>,
}

impl Default for PageText {
    fn default() -> Self {
        PageText {
            title: default_title(),
            intro: String::new(),
            note: None,
            questions_title: default_questions_title(),
            questions: Vec::new(),
            tradeoff: None,
        }
    }
}

fn default_title() -> String {
    "The study".into()
}

fn default_questions_title() -> String {
    "The questions".into()
}

/// One question of the page: a label and the number answering it, per dataset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// What the row of the table asks.
    pub label: String,
    /// The grid row whose runs answer it (default: the baseline).
    #[serde(default)]
    pub row: Option<String>,
    /// Which number of that row.
    pub value: QuestionValue,
}

/// The number a question shows for its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionValue {
    /// precision@1, all classes, mean ± spread over seeds.
    #[serde(rename = "precision_at_1")]
    PrecisionAt1,
    /// Majority vote of the 10 nearest, mean over seeds.
    MajorityVote,
    /// precision@1 on the held-out classes by the model that never saw them.
    #[serde(rename = "unseen_precision_at_1")]
    UnseenPrecisionAt1,
    /// Drop of precision@1 on the held-out classes, mean ± spread.
    PrecisionDropUnseen,
    /// The loss's own logits accuracy beside its kNN precision@1.
    LogitsVsKnn,
}

/// The trade-off section's wording.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradeoffText {
    pub title: String,
    #[serde(default)]
    pub text: String,
}

impl PageText {
    /// Reads `page.toml` from the grid directory `root` (the defaults when it is absent)
    /// and checks that every question names a row in `rows`.
    pub fn load(root: &Path, rows: &[&str]) -> Result<PageText> {
        let path = root.join(PAGE_FILE);
        if !path.exists() {
            return Ok(PageText::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let page: PageText =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for q in &page.questions {
            if let Some(row) = q.row.as_deref().filter(|r| !rows.contains(r)) {
                bail!(
                    "{}: question {:?} names row {row:?}, which no dataset folder has",
                    path.display(),
                    q.label
                );
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_file_gives_defaults_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let page = PageText::load(dir.path(), &["base"]).unwrap();
        assert_eq!(page.title, "The study");
        assert!(page.questions.is_empty());

        let write = |text: &str| std::fs::write(dir.path().join(PAGE_FILE), text).unwrap();
        write("title = \"T\"\n[[question]]\nlabel = \"q\"\nrow = \"base\"\nvalue = \"majority_vote\"\n");
        let page = PageText::load(dir.path(), &["base"]).unwrap();
        assert_eq!(page.questions[0].value, QuestionValue::MajorityVote);

        write("[[question]]\nlabel = \"q\"\nrow = \"gone\"\nvalue = \"precision_at_1\"\n");
        let e = format!("{:#}", PageText::load(dir.path(), &["base"]).unwrap_err());
        assert!(e.contains("page.toml") && e.contains("gone"), "{e}");

        write("titel = \"T\"\n");
        let e = format!("{:#}", PageText::load(dir.path(), &["base"]).unwrap_err());
        assert!(e.contains("page.toml") && e.contains("titel"), "{e}");
    }
}
