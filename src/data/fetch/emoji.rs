//! `dmlviz data fetch emoji`: one class per emoji, one 64×64 image per vendor, from the
//! npm packages `emoji-datasource-<vendor>` (Cal Henderson's emoji-data).
//!
//! Each vendor tarball is read twice, streaming: first only its file list (cheap: the
//! time goes into decoding PNGs, not gunzip) so that the classes, and with them the
//! numbered folder names, are known before anything is written; then the wanted PNGs,
//! which are composited on white and written in parallel batches. Memory stays at one
//! batch of small PNGs, even for the ~100 MB Apple tarball.

use super::registry::{for_each_in_tgz, npm_tarball};
use super::{
    class_folder_name, previous_manifest, prune_stale, DatasetManifest, FetchReport, SourcePackage,
};
use crate::atomic::{write_json, write_png};
use crate::data::decode::flatten_on_white;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use image::DynamicImage;
use rayon::prelude::*;
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

/// Version of the `emoji-datasource-*` packages; the licence notes below are taken
/// from its README, so a new version needs those re-read.
pub const EMOJI_VERSION: &str = "16.0.0";

/// Vendors with an `emoji-datasource-<vendor>` image package.
pub const VENDORS: [&str; 4] = ["google", "twitter", "facebook", "apple"];

/// Side of the per-emoji PNGs used (`img/<vendor>/64/`).
const IMAGE_SIZE: u32 = 64;

/// Encoded PNGs held before a parallel decode/write round (a few MB at most).
const BATCH: usize = 256;

/// Options of `dmlviz data fetch emoji`.
#[derive(Debug, Clone)]
pub struct EmojiOptions {
    /// Dataset directory (one sub-folder per class, plus `dataset.json`).
    pub out: PathBuf,
    /// Where the npm tarballs are kept between runs.
    pub cache: PathBuf,
    /// Vendors to draw images from; an emoji becomes a class only if all of them have it.
    pub vendors: Vec<String>,
    /// Keep only emoji of this `category` of `emoji.json` (exact match), e.g. "Animals & Nature".
    pub category: Option<String>,
}

impl Default for EmojiOptions {
    fn default() -> Self {
        EmojiOptions {
            out: PathBuf::from("data/emoji"),
            cache: PathBuf::from("data/.cache"),
            vendors: VENDORS.iter().map(|v| v.to_string()).collect(),
            category: None,
        }
    }
}

/// The fields of one `emoji.json` entry this fetcher uses (skin variations are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EmojiEntry {
    /// Unicode name, e.g. "Dog Face".
    pub name: String,
    /// Colon-syntax name, e.g. "dog"; used for the class folder.
    pub short_name: String,
    /// Code points, e.g. "1F436".
    pub unified: String,
    /// Image file name inside `img/<vendor>/64/`.
    pub image: String,
    pub category: String,
    pub subcategory: String,
    /// CLDR order; classes are numbered in this order.
    pub sort_order: i64,
    #[serde(default)]
    pub has_img_google: bool,
    #[serde(default)]
    pub has_img_twitter: bool,
    #[serde(default)]
    pub has_img_facebook: bool,
    #[serde(default)]
    pub has_img_apple: bool,
}

impl EmojiEntry {
    /// Whether `emoji.json` says `vendor` draws this emoji (false for an unknown vendor).
    pub fn has_img(&self, vendor: &str) -> bool {
        match vendor {
            "google" => self.has_img_google,
            "twitter" => self.has_img_twitter,
            "facebook" => self.has_img_facebook,
            "apple" => self.has_img_apple,
            _ => false,
        }
    }
}

/// Checks the vendor list: non-empty, known vendors only, no repeats.
pub fn check_vendors(vendors: &[String]) -> Result<()> {
    if vendors.is_empty() {
        bail!(
            "no emoji vendor chosen; valid vendors: {}",
            VENDORS.join(", ")
        );
    }
    let mut seen = HashSet::new();
    for vendor in vendors {
        if !VENDORS.contains(&vendor.as_str()) {
            bail!(
                "unknown emoji vendor {vendor:?}; valid vendors: {}",
                VENDORS.join(", ")
            );
        }
        if !seen.insert(vendor) {
            bail!("emoji vendor {vendor:?} given twice");
        }
    }
    Ok(())
}

/// Checks that `category` (if any) is one of the categories of `entries`; the error
/// lists the valid ones in emoji order.
pub fn check_category(entries: &[EmojiEntry], category: Option<&str>) -> Result<()> {
    let Some(category) = category else {
        return Ok(());
    };
    if entries.iter().any(|e| e.category == category) {
        return Ok(());
    }
    let mut by_order: Vec<&EmojiEntry> = entries.iter().collect();
    by_order.sort_by_key(|e| e.sort_order);
    let mut valid: Vec<&str> = Vec::new();
    for e in by_order {
        if !valid.contains(&e.category.as_str()) {
            valid.push(&e.category);
        }
    }
    bail!(
        "unknown emoji category {category:?}; valid categories: {}",
        valid
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The classes, in order: entries drawn by every vendor in `vendors` (per their
/// `has_img_*` flags) and, if given, of `category`, sorted by `sort_order`.
pub fn select_emoji(
    entries: &[EmojiEntry],
    vendors: &[String],
    category: Option<&str>,
) -> Vec<EmojiEntry> {
    let mut selected: Vec<EmojiEntry> = entries
        .iter()
        .filter(|e| category.is_none_or(|c| e.category == c))
        .filter(|e| vendors.iter().all(|v| e.has_img(v)))
        .cloned()
        .collect();
    // `unified` breaks ties so the numbering never depends on the input order.
    selected.sort_by(|a, b| {
        a.sort_order
            .cmp(&b.sort_order)
            .then_with(|| a.unified.cmp(&b.unified))
    });
    selected
}

/// Licence notes for the chosen vendors, as the packages' README (v16.0.0) states them.
fn licence_notes(vendors: &[String]) -> Vec<String> {
    let mut notes = vec![
        "emoji.json metadata (names, categories): MIT, Copyright (c) 2013 Cal Henderson (emoji-data)".to_string(),
    ];
    for vendor in vendors {
        notes.push(
            match vendor.as_str() {
                "google" => "google images: Noto Emoji, Apache License 2.0",
                "twitter" => "twitter images: Twemoji, Creative Commons Attribution 4.0 (CC-BY-4.0); credit required",
                "facebook" => "facebook images: (c) Facebook, Inc., no clear licensing; do not redistribute",
                "apple" => "apple images: Copyright (c) Apple Inc., not licensed for commercial usage; do not redistribute",
                _ => continue,
            }
            .to_string(),
        );
    }
    notes
}

fn package_name(vendor: &str) -> String {
    format!("emoji-datasource-{vendor}")
}

/// Path of a vendor's 64 px images inside its tarball.
fn image_dir(vendor: &str) -> String {
    format!("package/img/{vendor}/{IMAGE_SIZE}/")
}

/// Parses `emoji.json` entry by entry, so that one malformed entry is skipped
/// (and reported) rather than failing the whole fetch.
fn parse_emoji_json(
    bytes: &[u8],
    what: &str,
    skipped: &mut Vec<String>,
) -> Result<Vec<EmojiEntry>> {
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(bytes).with_context(|| format!("{what}: not a JSON array"))?;
    let mut entries = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        match serde_json::from_value::<EmojiEntry>(value) {
            Ok(entry) => entries.push(entry),
            Err(e) => skipped.push(format!("{what}: entry {i}: {e}")),
        }
    }
    Ok(entries)
}

/// Turns one vendor PNG into the class image: decode, check size, composite on white.
fn emoji_image(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let rgba = image::load_from_memory(bytes)
        .map_err(|e| format!("cannot decode: {e}"))?
        .to_rgba8();
    if rgba.dimensions() != (IMAGE_SIZE, IMAGE_SIZE) {
        return Err(format!(
            "is {}x{}, expected {IMAGE_SIZE}x{IMAGE_SIZE}",
            rgba.width(),
            rgba.height()
        ));
    }
    Ok(DynamicImage::ImageRgb8(flatten_on_white(
        DynamicImage::ImageRgba8(rgba),
    )))
}

/// Class folder name → the emoji's metadata (name, short_name, unified, category, ...).
type Classes = BTreeMap<String, BTreeMap<String, String>>;

/// Builds the emoji dataset into `opts.out` (see the module comment).
pub fn fetch_emoji(opts: &EmojiOptions) -> Result<FetchReport> {
    check_vendors(&opts.vendors)?;
    let previous = previous_manifest(&opts.out, "emoji")?;
    let mut report = FetchReport::default();

    let tarballs: Vec<PathBuf> = opts
        .vendors
        .iter()
        .map(|v| npm_tarball(&package_name(v), EMOJI_VERSION, &opts.cache))
        .collect::<Result<_>>()?;
    let PackageListing {
        present,
        emoji_json,
    } = list_packages(&opts.vendors, &tarballs)?;
    let json_what = format!(
        "{}@{EMOJI_VERSION}/emoji.json",
        package_name(&opts.vendors[0])
    );
    let emoji_json = emoji_json
        .with_context(|| format!("{json_what} not found in {}", tarballs[0].display()))?;
    let entries = parse_emoji_json(&emoji_json, &json_what, &mut report.skipped)?;
    drop(emoji_json);

    check_category(&entries, opts.category.as_deref())?;
    let selected = select_emoji(&entries, &opts.vendors, opts.category.as_deref());
    let (classes, folder_of) = assign_classes(&selected, &opts.vendors, &present, &mut report);
    drop(present);
    report.classes = classes.len();
    eprintln!(
        "emoji: {} classes from {} entries (vendors {}, category {})",
        classes.len(),
        entries.len(),
        opts.vendors.join(", "),
        opts.category.as_deref().unwrap_or("any")
    );

    let written = write_images(opts, &tarballs, &folder_of, &mut report)?;
    let manifest = dataset_manifest(opts, classes);
    prune_stale(&opts.out, previous.as_ref(), &written)?;
    // Written last: a dataset.json means the images beside it are complete.
    write_json(&opts.out.join("dataset.json"), &manifest)?;
    Ok(report)
}

/// What pass 1 found in the vendor tarballs.
struct PackageListing {
    /// Per vendor, the image files its tarball holds.
    present: Vec<HashSet<String>>,
    /// `emoji.json`, when some tarball had it.
    emoji_json: Option<Vec<u8>>,
}

/// Pass 1: which images each tarball really holds, and emoji.json (the same file in
/// every vendor package, so the first one's is used).
fn list_packages(vendors: &[String], tarballs: &[PathBuf]) -> Result<PackageListing> {
    let mut present: Vec<HashSet<String>> = Vec::new();
    let mut emoji_json: Option<Vec<u8>> = None;
    for (vendor, tgz) in vendors.iter().zip(tarballs) {
        let dir = image_dir(vendor);
        let names = RefCell::new(HashSet::new());
        let want_json = emoji_json.is_none();
        for_each_in_tgz(
            tgz,
            |path| {
                if let Some(file) = path.strip_prefix(&dir) {
                    names.borrow_mut().insert(file.to_string());
                }
                want_json && path == "package/emoji.json"
            },
            |_, bytes| {
                emoji_json = Some(bytes);
                Ok(())
            },
        )?;
        present.push(names.into_inner());
    }
    Ok(PackageListing {
        present,
        emoji_json,
    })
}

/// Classes: the selected entries whose image file is in every tarball, numbered in
/// order; also returns image file → class folder. Entries left out are noted.
fn assign_classes(
    selected: &[EmojiEntry],
    vendors: &[String],
    present: &[HashSet<String>],
    report: &mut FetchReport,
) -> (Classes, HashMap<String, String>) {
    let mut classes = Classes::new();
    let mut folder_of: HashMap<String, String> = HashMap::new();
    for entry in selected {
        let missing: Vec<String> = vendors
            .iter()
            .zip(present)
            .filter(|(_, names)| !names.contains(&entry.image))
            .map(|(v, _)| format!("{}{}", image_dir(v), entry.image))
            .collect();
        if !missing.is_empty() {
            report.skipped.push(format!(
                "{} ({}): has_img but missing from the package: {}",
                entry.short_name,
                entry.unified,
                missing.join(", ")
            ));
            continue;
        }
        if folder_of.contains_key(&entry.image) {
            report.skipped.push(format!(
                "{} ({}): image {} already used by another emoji",
                entry.short_name, entry.unified, entry.image
            ));
            continue;
        }
        let folder = class_folder_name(classes.len(), &entry.short_name);
        folder_of.insert(entry.image.clone(), folder.clone());
        let meta = [
            ("name", &entry.name),
            ("short_name", &entry.short_name),
            ("unified", &entry.unified),
            ("category", &entry.category),
            ("subcategory", &entry.subcategory),
        ];
        classes.insert(
            folder,
            meta.into_iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        );
    }
    (classes, folder_of)
}

/// Pass 2: decodes, composites and writes the wanted images, a batch at a time;
/// returns class folder → the files written there.
fn write_images(
    opts: &EmojiOptions,
    tarballs: &[PathBuf],
    folder_of: &HashMap<String, String>,
    report: &mut FetchReport,
) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let bar = Progress::new(opts.vendors.len() as u64, "emoji vendors");
    for (vendor, tgz) in opts.vendors.iter().zip(tarballs) {
        bar.inc(1);
        bar.set_message(vendor.clone());
        let dir = image_dir(vendor);
        let file_name = format!("{vendor}.png");
        let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(BATCH);
        let mut flush =
            |batch: &mut Vec<(String, Vec<u8>)>, report: &mut FetchReport| -> Result<()> {
                let results: Vec<Result<std::result::Result<String, String>>> = batch
                    .par_iter()
                    .map(|(file, bytes)| {
                        let folder = &folder_of[file];
                        match emoji_image(bytes) {
                            Ok(image) => {
                                write_png(&opts.out.join(folder).join(&file_name), &image)?;
                                Ok(Ok(folder.clone()))
                            }
                            Err(why) => Ok(Err(format!("{}{file} ({folder}): {why}", dir))),
                        }
                    })
                    .collect();
                batch.clear();
                for result in results {
                    match result? {
                        Ok(folder) => {
                            written.entry(folder).or_default().insert(file_name.clone());
                            report.images += 1;
                        }
                        Err(why) => report.skipped.push(why),
                    }
                }
                Ok(())
            };
        for_each_in_tgz(
            tgz,
            |path| {
                path.strip_prefix(&dir)
                    .is_some_and(|file| folder_of.contains_key(file))
            },
            |path, bytes| {
                batch.push((path[dir.len()..].to_string(), bytes));
                if batch.len() >= BATCH {
                    flush(&mut batch, report)?;
                }
                Ok(())
            },
        )?;
        flush(&mut batch, report)?;
        eprintln!("emoji: {vendor} done");
    }
    Ok(written)
}

/// The `dataset.json` of an emoji dataset: sources, licences, classes, settings.
fn dataset_manifest(opts: &EmojiOptions, classes: Classes) -> DatasetManifest {
    let mut settings = BTreeMap::from([
        ("vendors".to_string(), opts.vendors.join(",")),
        ("image_size".to_string(), IMAGE_SIZE.to_string()),
        ("background".to_string(), "white".to_string()),
    ]);
    if let Some(category) = &opts.category {
        settings.insert("category".to_string(), category.clone());
    }
    DatasetManifest {
        name: "emoji".to_string(),
        sources: opts
            .vendors
            .iter()
            .map(|v| SourcePackage {
                registry: "npm".to_string(),
                name: package_name(v),
                version: EMOJI_VERSION.to_string(),
            })
            .collect(),
        licences: licence_notes(&opts.vendors),
        classes,
        settings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(short_name: &str, category: &str, sort_order: i64, vendors: &[&str]) -> EmojiEntry {
        EmojiEntry {
            name: short_name.to_uppercase(),
            short_name: short_name.to_string(),
            unified: format!("{sort_order:04X}"),
            image: format!("{short_name}.png"),
            category: category.to_string(),
            subcategory: "sub".to_string(),
            sort_order,
            has_img_google: vendors.contains(&"google"),
            has_img_twitter: vendors.contains(&"twitter"),
            has_img_facebook: vendors.contains(&"facebook"),
            has_img_apple: vendors.contains(&"apple"),
        }
    }

    fn names(entries: &[EmojiEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.short_name.as_str()).collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn sample() -> Vec<EmojiEntry> {
        let all = ["google", "twitter", "facebook", "apple"];
        vec![
            entry("dog", "Animals & Nature", 30, &all),
            entry("grinning", "Smileys & Emotion", 1, &all),
            entry(
                "new_thing",
                "Smileys & Emotion",
                2,
                &["google", "twitter", "apple"],
            ),
            entry("cat", "Animals & Nature", 20, &all),
            entry("pear", "Food & Drink", 40, &["google", "facebook"]),
        ]
    }

    #[test]
    fn selects_emoji_drawn_by_all_vendors_in_sort_order() {
        let entries = sample();
        let all = strings(&VENDORS);
        assert_eq!(
            names(&select_emoji(&entries, &all, None)),
            ["grinning", "cat", "dog"]
        );
        // Without facebook, the emoji it lacks comes back.
        let three = strings(&["google", "twitter", "apple"]);
        assert_eq!(
            names(&select_emoji(&entries, &three, None)),
            ["grinning", "new_thing", "cat", "dog"]
        );
        let two = strings(&["google", "facebook"]);
        assert_eq!(
            names(&select_emoji(&entries, &two, None)),
            ["grinning", "cat", "dog", "pear"]
        );
    }

    #[test]
    fn category_filter_keeps_only_that_category() {
        let entries = sample();
        let all = strings(&VENDORS);
        assert_eq!(
            names(&select_emoji(&entries, &all, Some("Animals & Nature"))),
            ["cat", "dog"]
        );
        assert!(select_emoji(&entries, &all, Some("Food & Drink")).is_empty());
    }

    #[test]
    fn unknown_category_or_vendor_is_rejected_with_the_valid_choices() {
        let entries = sample();
        check_category(&entries, None).unwrap();
        check_category(&entries, Some("Animals & Nature")).unwrap();
        let err = check_category(&entries, Some("Animals"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Animals\""), "{err}");
        assert!(
            err.contains("\"Smileys & Emotion\", \"Animals & Nature\", \"Food & Drink\""),
            "{err}"
        );

        check_vendors(&strings(&["apple", "google"])).unwrap();
        let err = check_vendors(&strings(&["google", "samsung"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("samsung") && err.contains("google, twitter, facebook, apple"),
            "{err}"
        );
        assert!(check_vendors(&[]).is_err());
        assert!(check_vendors(&strings(&["apple", "apple"])).is_err());
    }

    #[test]
    fn malformed_entries_are_skipped_and_reported() {
        let json = br#"[{"name":"DOG","short_name":"dog","unified":"1F436","image":"1f436.png",
            "category":"Animals & Nature","subcategory":"animal-mammal","sort_order":5,"has_img_apple":true,
            "skin_variations":{}},
            {"name":null,"short_name":"bad"}]"#;
        let mut skipped = Vec::new();
        let entries = parse_emoji_json(json, "emoji.json", &mut skipped).unwrap();
        assert_eq!(names(&entries), ["dog"]);
        assert!(entries[0].has_img("apple") && !entries[0].has_img("google"));
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].starts_with("emoji.json: entry 1:"),
            "{skipped:?}"
        );
        assert!(parse_emoji_json(b"{}", "emoji.json", &mut skipped).is_err());
    }

    #[test]
    fn vendor_png_must_decode_and_be_64_pixels() {
        assert!(emoji_image(b"not a png")
            .unwrap_err()
            .contains("cannot decode"));
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(image::RgbaImage::new(32, 32))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(emoji_image(&png).unwrap_err().contains("32x32"));
    }
}
