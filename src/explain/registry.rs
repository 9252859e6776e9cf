//! Lookups over the registry of saliency methods ([`super::METHODS`], in page order): by
//! command-line key, the notes pages show, the help of `--method`, the columns of the
//! report's sample, and the methods that run on a batch alone.

use super::method::SaliencyMethod;
use super::METHODS;
use anyhow::{bail, Result};

/// What overlays and blanks mean, after the methods' notes.
const DISPLAY_NOTE: &str = "Overlays: JET colormap blended 50/50 with the image. Grey blanks mark constant or all-zero maps (e.g. a dead target).";

/// `methods` without those that need the stored weights of every training image
/// (weight transfer), in order: the ones that run on a batch of images alone.
pub fn without_weight_store(
    methods: &[&'static dyn SaliencyMethod],
) -> Vec<&'static dyn SaliencyMethod> {
    methods
        .iter()
        .copied()
        .filter(|m| !m.info().weight_store)
        .collect()
}

/// A key as the command line writes it (`guided-gradcam` for `guided_gradcam`).
pub fn cli_name(m: &dyn SaliencyMethod) -> String {
    m.info().name.replace('_', "-")
}

/// The method of a key: its name or an alias, in any case, `-` or `_`.
pub fn find(key: &str) -> Option<&'static dyn SaliencyMethod> {
    let key = key.trim().to_ascii_lowercase().replace('-', "_");
    METHODS.iter().copied().find(|m| {
        let info = m.info();
        info.name == key || info.aliases.contains(&key.as_str())
    })
}

/// Position of a method in page order.
fn position(m: &dyn SaliencyMethod) -> usize {
    let name = m.info().name;
    METHODS
        .iter()
        .position(|x| x.info().name == name)
        .unwrap_or(METHODS.len())
}

/// Methods of command-line keys (`all` for every method), once each, in page order.
pub fn parse(keys: &[String]) -> Result<Vec<&'static dyn SaliencyMethod>> {
    let mut out: Vec<&'static dyn SaliencyMethod> = Vec::new();
    for key in keys {
        if key.trim().eq_ignore_ascii_case("all") {
            out.extend(METHODS.iter().copied());
            continue;
        }
        match find(key) {
            Some(m) => out.push(m),
            None => bail!("unknown method {key:?}: expected {}", choices()),
        }
    }
    out.sort_by_key(|m| position(*m));
    out.dedup_by_key(|m| m.info().name);
    Ok(out)
}

/// `gradcam, transfer, …, pair or all`.
fn choices() -> String {
    let names: Vec<String> = METHODS.iter().map(|m| cli_name(*m)).collect();
    format!("{} or all", names.join(", "))
}

/// The help line of `--method`.
pub fn method_help() -> String {
    format!("Saliency method: {} (repeatable)", choices())
}

/// The long help of `--method`: every method with its title and note.
pub fn method_long_help() -> String {
    let mut s = method_help();
    for m in METHODS {
        s.push_str(&format!("\n  {}: {}", cli_name(*m), m.info().note));
    }
    s
}

/// What every map shows, one sentence per method in page order, then what overlays and
/// blanks mean (plain text: pages escape it).
pub fn notes() -> String {
    let mut parts: Vec<&str> = METHODS.iter().map(|m| m.info().note).collect();
    parts.push(DISPLAY_NOTE);
    parts.join(" ")
}

/// The keys and labels of the maps in `explanations.json`, in column order.
pub fn sample_columns() -> Vec<(String, String)> {
    METHODS.iter().flat_map(|m| m.sample_columns()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_in_page_order_once_each() {
        let keys = |k: &[&str]| -> Vec<&str> {
            parse(&k.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap()
                .iter()
                .map(|m| m.info().name)
                .collect()
        };
        assert_eq!(
            keys(&["pair", "Guided-GradCAM", "grad-cam", "gradcam"]),
            ["gradcam", "guided_gradcam", "pair"]
        );
        assert_eq!(keys(&["all", "vanilla"]).len(), METHODS.len());
        let err = parse(&["lime".to_string()]).unwrap_err().to_string();
        assert!(
            err.contains("\"lime\"") && err.contains("guided-gradcam"),
            "{err}"
        );
    }

    #[test]
    fn every_method_has_a_unique_key_title_and_note() {
        let mut seen = std::collections::HashSet::new();
        for m in METHODS {
            let info = m.info();
            for key in std::iter::once(&info.name).chain(info.aliases) {
                assert!(seen.insert(*key), "{key} used twice");
                assert_eq!(find(key).map(|f| f.info().name), Some(info.name));
            }
            assert!(
                !info.title.is_empty() && !info.passes.is_empty(),
                "{}",
                info.name
            );
            assert!(notes().contains(info.note), "{}: note missing", info.name);
        }
        let columns = sample_columns();
        assert!(columns.iter().any(|(k, _)| k == "pair_query"));
        assert_eq!(columns[0], ("gradcam".to_string(), "Grad-CAM".to_string()));
    }
}
