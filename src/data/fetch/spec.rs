//! Which registry dataset to build, as a typed value: what an experiment's
//! `data.fetch` holds and what `dmlviz data fetch` parses its arguments into.
//!
//! In TOML: `fetch = { source = "emoji", category = "Animals & Nature" }`,
//! `fetch = { source = "cards", height = 96 }`,
//! `fetch = { source = "fashion-mnist", per_class = 200 }`. Unknown keys are rejected
//! with their name. Configs written before the typed form stored the command's words
//! (`fetch = ["emoji", "--category", "Animals & Nature"]`); [`typed_or_words`] still
//! reads those, so old run directories' `config.toml` load, and converts them.

use super::{cards, emoji, fashion_mnist, FetchReport};
use anyhow::{bail, Context, Result};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Where downloaded packages are kept between fetches, unless told otherwise.
pub const DEFAULT_CACHE: &str = "data/.cache";

/// A dataset built from registry packages, with its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FetchSpec {
    /// npm `emoji-datasource-*`: one class per emoji, one image per vendor.
    Emoji {
        /// Vendors whose images form the classes (default: google, twitter, facebook,
        /// apple); an emoji becomes a class only if all of them draw it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vendors: Option<Vec<String>>,
        /// Keep one `emoji.json` category only, e.g. "Animals & Nature".
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
    },
    /// Debian `kdegames-card-data-kf5`: 52 card classes, one image per deck.
    Cards {
        /// Image height in pixels (default 128).
        #[serde(default = "default_card_height")]
        height: u32,
        /// Deck names to render (default: every freely licensed deck).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decks: Option<Vec<String>>,
    },
    /// Debian `dataset-fashion-mnist`: 28×28 grey images, 10 classes.
    FashionMnist {
        /// Keep the first N images of each class.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        per_class: Option<usize>,
    },
}

fn default_card_height() -> u32 {
    cards::CardsOptions::default().height
}

impl FetchSpec {
    /// The dataset's name, as its `dataset.json` and `dmlviz data fetch` spell it.
    pub fn name(&self) -> &'static str {
        match self {
            FetchSpec::Emoji { .. } => "emoji",
            FetchSpec::Cards { .. } => "cards",
            FetchSpec::FashionMnist { .. } => "fashion-mnist",
        }
    }

    /// The output directory `dmlviz data fetch` uses without `--out`: `data/<name>`.
    pub fn default_dir(&self) -> PathBuf {
        Path::new("data").join(self.name())
    }

    /// The same dataset as a `dmlviz data fetch` command line (for messages).
    pub fn command_line(&self) -> String {
        let mut words = vec!["dmlviz data fetch".to_string(), self.name().to_string()];
        let mut flag = |name: &str, value: String| {
            words.push(format!("--{name}"));
            words.push(if value.contains(' ') {
                format!("{value:?}")
            } else {
                value
            });
        };
        match self {
            FetchSpec::Emoji { vendors, category } => {
                if let Some(v) = vendors {
                    flag("vendors", v.join(","));
                }
                if let Some(c) = category {
                    flag("category", c.clone());
                }
            }
            FetchSpec::Cards { height, decks } => {
                flag("height", height.to_string());
                if let Some(d) = decks {
                    flag("decks", d.join(","));
                }
            }
            FetchSpec::FashionMnist { per_class } => {
                if let Some(n) = per_class {
                    flag("per-class", n.to_string());
                }
            }
        }
        words.join(" ")
    }

    /// Builds the dataset into `out`, keeping downloads in `cache`.
    pub fn fetch(&self, out: &Path, cache: &Path) -> Result<FetchReport> {
        let (out, cache) = (out.to_path_buf(), cache.to_path_buf());
        match self {
            FetchSpec::Emoji { vendors, category } => {
                let defaults = emoji::EmojiOptions::default();
                emoji::fetch_emoji(&emoji::EmojiOptions {
                    out,
                    cache,
                    vendors: vendors.clone().unwrap_or(defaults.vendors),
                    category: category.clone(),
                })
            }
            FetchSpec::Cards { height, decks } => cards::fetch_cards(&cards::CardsOptions {
                out,
                cache,
                height: *height,
                decks: decks.clone(),
                ..Default::default()
            }),
            FetchSpec::FashionMnist { per_class } => {
                fashion_mnist::fetch_fashion_mnist(&fashion_mnist::FashionMnistOptions {
                    out,
                    cache,
                    per_class: *per_class,
                })
            }
        }
    }

    /// Reads the older list form: `dmlviz data fetch` words such as
    /// `["cards", "--height", "96"]` (`--flag value` or `--flag=value`). A word this
    /// source has no option for is an error naming it.
    pub fn from_words(words: &[String]) -> Result<FetchSpec> {
        let Some((source, rest)) = words.split_first() else {
            bail!("an empty fetch list: give {{ source = \"emoji\" }}, \"cards\" or \"fashion-mnist\"");
        };
        let mut spec = match source.as_str() {
            "emoji" => FetchSpec::Emoji {
                vendors: None,
                category: None,
            },
            "cards" => FetchSpec::Cards {
                height: default_card_height(),
                decks: None,
            },
            "fashion-mnist" => FetchSpec::FashionMnist { per_class: None },
            other => bail!(
                "unknown fetch source {other:?}: expected \"emoji\", \"cards\" or \"fashion-mnist\""
            ),
        };
        let mut rest = rest.iter();
        while let Some(word) = rest.next() {
            let Some(flag) = word.strip_prefix("--") else {
                bail!("fetch word {word:?}: expected an option such as --category");
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, value.to_string()),
                None => {
                    let value = rest
                        .next()
                        .with_context(|| format!("fetch option {word:?} has no value"))?;
                    (flag, value.clone())
                }
            };
            spec.set_option(name, value)?;
        }
        Ok(spec)
    }

    /// Sets one option given by its `dmlviz data fetch` flag name (without `--`).
    fn set_option(&mut self, name: &str, value: String) -> Result<()> {
        let list = |v: &str| v.split(',').map(str::to_string).collect::<Vec<_>>();
        match (self, name) {
            (FetchSpec::Emoji { vendors, .. }, "vendors") => *vendors = Some(list(&value)),
            (FetchSpec::Emoji { category, .. }, "category") => *category = Some(value),
            (FetchSpec::Cards { height, .. }, "height") => *height = whole(name, &value)?,
            (FetchSpec::Cards { decks, .. }, "decks") => *decks = Some(list(&value)),
            (FetchSpec::FashionMnist { per_class }, "per-class") => {
                *per_class = Some(whole(name, &value)?)
            }
            (spec, _) => bail!("fetch option --{name} does not apply to {:?}", spec.name()),
        }
        Ok(())
    }
}

/// A whole-number option value, or an error naming the option and the value.
fn whole<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("fetch option --{name}: {value:?} is not a whole number"))
}

/// Creates the dataset at `path` with `fetch` when the folder is missing (saying so on
/// stderr); returns what the fetch built, or `None` when the folder was already there.
pub fn ensure_dataset(
    path: &Path,
    fetch: Option<&FetchSpec>,
    cache: &Path,
) -> Result<Option<FetchReport>> {
    if path.exists() {
        return Ok(None);
    }
    let Some(spec) = fetch else {
        bail!(
            "dataset {} not found, and data.fetch does not say how to build it. The reference \
             presets use CUB-200-2011: download it yourself and unpack it there, or run a preset \
             of experiments/small/",
            path.display()
        );
    };
    eprintln!(
        "fetching the dataset: {} --out {}",
        spec.command_line(),
        path.display()
    );
    spec.fetch(path, cache)
        .with_context(|| format!("building {} ({})", path.display(), spec.command_line()))
        .map(Some)
}

/// Serde `deserialize_with` for an optional `fetch` field: the typed table, or the
/// older list of `dmlviz data fetch` words converted to it.
pub fn typed_or_words<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FetchSpec>, D::Error> {
    struct Either;
    impl<'de> Visitor<'de> for Either {
        type Value = Option<FetchSpec>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(
                "a table such as { source = \"emoji\", category = \"Animals & Nature\" } \
                 (or the older list of `dmlviz data fetch` words)",
            )
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut words = Vec::new();
            while let Some(word) = seq.next_element::<String>()? {
                words.push(word);
            }
            FetchSpec::from_words(&words)
                .map(Some)
                .map_err(|e| de::Error::custom(format!("{e:#}")))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            FetchSpec::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(Either)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the `data` table: just the field under test.
    #[derive(Debug, Deserialize, Serialize)]
    struct Holder {
        #[serde(default, deserialize_with = "typed_or_words")]
        fetch: Option<FetchSpec>,
    }

    fn parse(text: &str) -> Result<Option<FetchSpec>, String> {
        toml::from_str::<Holder>(text)
            .map(|h| h.fetch)
            .map_err(|e| e.to_string())
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn typed_tables_parse_with_defaults() {
        assert_eq!(
            parse(r#"fetch = { source = "emoji", category = "Animals & Nature" }"#).unwrap(),
            Some(FetchSpec::Emoji {
                vendors: None,
                category: Some("Animals & Nature".into())
            })
        );
        assert_eq!(
            parse(r#"fetch = { source = "cards" }"#).unwrap(),
            Some(FetchSpec::Cards {
                height: 128,
                decks: None
            })
        );
        assert_eq!(
            parse(r#"fetch = { source = "fashion-mnist", per_class = 200 }"#).unwrap(),
            Some(FetchSpec::FashionMnist {
                per_class: Some(200)
            })
        );
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn unknown_keys_and_sources_are_named() {
        let e =
            parse(r#"fetch = { source = "emoji", categroy = "Animals & Nature" }"#).unwrap_err();
        assert!(e.contains("categroy"), "{e}");
        // A key of another source is unknown here too.
        let e = parse(r#"fetch = { source = "emoji", height = 96 }"#).unwrap_err();
        assert!(e.contains("height"), "{e}");
        let e = parse(r#"fetch = { source = "mnist" }"#).unwrap_err();
        assert!(e.contains("mnist"), "{e}");
        let e = parse(r#"fetch = { category = "Animals & Nature" }"#).unwrap_err();
        assert!(e.contains("source"), "{e}");
    }

    #[test]
    fn the_older_word_list_is_read_and_converted() {
        let spec = parse(r#"fetch = ["emoji", "--category", "Animals & Nature"]"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            spec,
            FetchSpec::Emoji {
                vendors: None,
                category: Some("Animals & Nature".into())
            }
        );
        // Written back, it is the typed table, which reads back to the same value.
        let text = toml::to_string(&Holder {
            fetch: Some(spec.clone()),
        })
        .unwrap();
        assert!(text.contains("source = \"emoji\""), "{text}");
        assert_eq!(parse(&text).unwrap(), Some(spec));
        assert_eq!(
            FetchSpec::from_words(&words(&[
                "cards",
                "--height=96",
                "--decks",
                "oxygen,future"
            ]))
            .unwrap(),
            FetchSpec::Cards {
                height: 96,
                decks: Some(vec!["oxygen".into(), "future".into()])
            }
        );
    }

    #[test]
    fn bad_words_are_named() {
        let err = |w: &[&str]| format!("{:#}", FetchSpec::from_words(&words(w)).unwrap_err());
        assert!(err(&["cards", "--height", "tall"]).contains("tall"));
        assert!(err(&["emoji", "--per-class", "3"]).contains("--per-class"));
        assert!(err(&["emoji", "--category"]).contains("--category"));
        assert!(err(&["emoji", "Animals"]).contains("Animals"));
        assert!(err(&["kanji"]).contains("kanji"));
        assert!(err(&[]).contains("empty"));
        let e = parse(r#"fetch = ["cards", "--out", "x"]"#).unwrap_err();
        assert!(e.contains("--out"), "{e}");
    }

    #[test]
    fn command_lines_quote_spaces() {
        let spec = FetchSpec::from_words(&words(&["emoji", "--category", "Animals & Nature"]));
        assert_eq!(
            spec.unwrap().command_line(),
            "dmlviz data fetch emoji --category \"Animals & Nature\""
        );
    }

    #[test]
    fn a_present_folder_is_not_fetched_and_a_missing_one_needs_a_spec() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        assert!(ensure_dataset(dir.path(), None, &cache).unwrap().is_none());
        let missing = dir.path().join("absent");
        let e = format!("{:#}", ensure_dataset(&missing, None, &cache).unwrap_err());
        assert!(e.contains("absent") && e.contains("data.fetch"), "{e}");
        assert!(!cache.exists(), "nothing was downloaded");
    }
}
