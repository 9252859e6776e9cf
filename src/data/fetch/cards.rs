//! `dmlviz data fetch cards`: renders the 52 playing cards of the KDE card decks
//! (Debian `kdegames-card-data-kf5`) into one class folder per card and one image
//! per deck, so that a class is "the queen of hearts" drawn in many styles.
//!
//! Each deck is one `.svgz` whose cards are elements with ids such as
//! `queen_heart`. Rendering one element of a big SVG alone has three traps (see
//! docs/DESIGN.md, "Rendering the card decks"), handled in [`load_deck`] and
//! [`render_card`].

use super::registry::debian_package;
use super::{class_folder_name, DatasetManifest, FetchReport, SourcePackage};
use crate::atomic::{write_json, write_png};
use crate::progress::Progress;
use anyhow::{anyhow, bail, ensure, Context, Result};
use rayon::prelude::*;
use resvg::tiny_skia::{self, Rect, Transform};
use resvg::usvg;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

/// Debian package that ships the decks.
pub const PACKAGE: &str = "kdegames-card-data-kf5";

/// Where the package keeps its decks, one `svg-<deck>/` folder each.
const DECKS_DIR: &str = "usr/share/carddecks";

/// Decks whose licence only covers members of the KDE project.
const RESTRICTED: &[&str] = &["konqi-modern"];

/// Suits in class order.
pub const SUITS: [&str; 4] = ["club", "diamond", "heart", "spade"];

/// Ranks in class order, as they appear in the decks' element ids.
pub const RANKS: [&str; 13] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "jack", "queen", "king",
];

/// Id prefix of the `<use>` elements [`load_deck`] adds for cards kept in `<defs>`.
const USE_PREFIX: &str = "dmlviz-use-";

/// Options of `dmlviz data fetch cards`.
#[derive(Debug, Clone)]
pub struct CardsOptions {
    /// Dataset directory to write (class folders and `dataset.json`).
    pub out: PathBuf,
    /// Where the Debian package is downloaded and unpacked.
    pub cache: PathBuf,
    /// Height of every card image in pixels; the width follows the deck's aspect.
    pub height: u32,
    /// Deck names such as `oxygen` (the folder name without `svg-`); `None` = all.
    pub decks: Option<Vec<String>>,
    /// Also render `konqi-modern`, whose licence is restricted to KDE project members.
    pub include_restricted: bool,
}

impl Default for CardsOptions {
    fn default() -> Self {
        CardsOptions {
            out: PathBuf::from("data/cards"),
            cache: PathBuf::from("data/.cache"),
            height: 128,
            decks: None,
            include_restricted: false,
        }
    }
}

/// One card class: its element id in the decks plus its rank and suit.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// Element id in every deck, e.g. `queen_heart`.
    pub id: String,
    /// `ace`, `2` … `10`, `jack`, `queen`, `king`.
    pub rank: &'static str,
    /// `club`, `diamond`, `heart` or `spade`.
    pub suit: &'static str,
}

/// The 52 cards in class order: suits club, diamond, heart, spade; within a suit
/// ranks 1 (ace) … 10, jack, queen, king.
pub fn cards() -> Vec<Card> {
    SUITS
        .iter()
        .flat_map(|&suit| {
            RANKS.iter().map(move |&rank| Card {
                id: format!("{rank}_{suit}"),
                rank: if rank == "1" { "ace" } else { rank },
                suit,
            })
        })
        .collect()
}

/// A deck file found in the unpacked package.
#[derive(Debug, Clone)]
struct Deck {
    /// Folder name without `svg-`, e.g. `oxygen`.
    name: String,
    file: PathBuf,
}

/// Fetches the package, renders the chosen decks and writes the dataset to `opts.out`.
pub fn fetch_cards(opts: &CardsOptions) -> Result<FetchReport> {
    ensure!(opts.height > 0, "card height must be positive");
    let package = debian_package(PACKAGE, &opts.cache)?;
    let decks = select_decks(find_decks(&package.root.join(DECKS_DIR))?, opts)?;
    let cards = cards();
    eprintln!("rendering {} cards from {} decks", cards.len(), decks.len());

    // Decks in parallel, and cards within a deck too: one deck (dondorf) is far
    // bigger than the others and would otherwise finish last on its own.
    let bar = Progress::new(decks.len() as u64, "card decks");
    let results: Vec<(usize, Vec<String>)> = decks
        .par_iter()
        .map(|deck| {
            let rendered = render_deck(deck, &cards, opts);
            bar.inc(1);
            rendered
        })
        .collect::<Result<_>>()?;
    bar.finish();
    let images: usize = results.iter().map(|(n, _)| n).sum();
    let skipped: Vec<String> = results.into_iter().flat_map(|(_, s)| s).collect();
    if images == 0 {
        bail!("no card could be rendered: {}", skipped.join("; "));
    }

    let names: Vec<&str> = decks.iter().map(|d| d.name.as_str()).collect();
    let classes = cards
        .iter()
        .enumerate()
        .map(|(i, card)| {
            let meta = BTreeMap::from([
                ("card".to_string(), card.id.clone()),
                ("rank".to_string(), card.rank.to_string()),
                ("suit".to_string(), card.suit.to_string()),
            ]);
            (class_folder_name(i, &card.id), meta)
        })
        .collect();
    let manifest = DatasetManifest {
        name: "cards".into(),
        sources: vec![SourcePackage {
            registry: "debian".into(),
            name: package.name.clone(),
            version: package.version.clone(),
        }],
        licences: licences(&names),
        classes,
        settings: BTreeMap::from([
            ("height".to_string(), opts.height.to_string()),
            ("decks".to_string(), names.join(",")),
        ]),
    };
    write_json(&opts.out.join("dataset.json"), &manifest)?;
    Ok(FetchReport {
        classes: cards.len(),
        images,
        skipped,
    })
}

/// Renders every card of one deck into its class folder. Returns the number of
/// images written and the skipped cards (or the whole deck) with reasons; only
/// failing to write an image is an error.
fn render_deck(deck: &Deck, cards: &[Card], opts: &CardsOptions) -> Result<(usize, Vec<String>)> {
    let tree = match load_deck(&deck.file) {
        Ok(tree) => tree,
        Err(e) => return Ok((0, vec![format!("deck {}: {e:#}", deck.name)])),
    };
    let outcomes: Vec<Option<String>> = cards
        .par_iter()
        .enumerate()
        .map(|(i, card)| {
            // A renderer panic on one odd card must not take the whole fetch down.
            let rendered = std::panic::catch_unwind(AssertUnwindSafe(|| {
                render_card(&tree, &card.id, opts.height)
            }))
            .unwrap_or_else(|_| Err(anyhow!("the renderer panicked")));
            let image = match rendered {
                Ok(image) => image,
                Err(e) => return Ok(Some(format!("deck {} card {}: {e:#}", deck.name, card.id))),
            };
            let path = opts
                .out
                .join(class_folder_name(i, &card.id))
                .join(format!("{}.png", deck.name));
            write_png(&path, &image::DynamicImage::ImageRgb8(image))?;
            Ok(None)
        })
        .collect::<Result<_>>()?;
    let skipped: Vec<String> = outcomes.into_iter().flatten().collect();
    Ok((cards.len() - skipped.len(), skipped))
}

/// Lists the decks of the unpacked package, sorted by name.
fn find_decks(dir: &Path) -> Result<Vec<Deck>> {
    let mut decks = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let folder = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        let folder_name = folder
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(name) = folder_name.strip_prefix("svg-") else {
            continue;
        };
        if !folder.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("reading {}", folder.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "svgz" || x == "svg"))
            .collect();
        files.sort();
        match files.as_slice() {
            [file] => decks.push(Deck {
                name: name.to_string(),
                file: file.clone(),
            }),
            [] => bail!("deck folder {} holds no .svgz file", folder.display()),
            _ => bail!(
                "deck folder {} holds several SVG files: {files:?}",
                folder.display()
            ),
        }
    }
    ensure!(
        !decks.is_empty(),
        "no svg-* deck folders in {}",
        dir.display()
    );
    decks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(decks)
}

/// Keeps the decks the options ask for; restricted decks only when allowed.
fn select_decks(all: Vec<Deck>, opts: &CardsOptions) -> Result<Vec<Deck>> {
    let restricted = |name: &str| RESTRICTED.contains(&name) && !opts.include_restricted;
    let Some(wanted) = &opts.decks else {
        return Ok(all.into_iter().filter(|d| !restricted(&d.name)).collect());
    };
    for name in wanted {
        if !all.iter().any(|d| &d.name == name) {
            let known: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
            bail!(
                "unknown card deck {name:?}; the package has: {}",
                known.join(", ")
            );
        }
        if restricted(name) {
            bail!("card deck {name:?} is licensed to KDE project members only; include restricted decks to render it");
        }
    }
    Ok(all
        .into_iter()
        .filter(|d| wanted.contains(&d.name))
        .collect())
}

/// Licence notes (from the package's debian/copyright) for the rendered decks.
fn licences(decks: &[&str]) -> Vec<String> {
    let special = ["tigullio-international", "penguins", "konqi-modern"];
    let gpl2: Vec<&str> = decks
        .iter()
        .copied()
        .filter(|d| !special.contains(d))
        .collect();
    let mut notes = Vec::new();
    if !gpl2.is_empty() {
        notes.push(format!("GPL-2+: decks {}", gpl2.join(", ")));
    }
    if decks.contains(&"tigullio-international") {
        notes.push("LGPL-2+: deck tigullio-international".to_string());
    }
    if decks.contains(&"penguins") {
        notes.push(
            "GPL-3+: deck penguins; credit required: original Tux artwork by Larry Ewing, \
             Simon Budig and Anja Gerwinski"
                .to_string(),
        );
    }
    if decks.contains(&"konqi-modern") {
        notes.push(
            "deck konqi-modern: licensed to members of the KDE project only; do not redistribute"
                .to_string(),
        );
    }
    notes.push(format!(
        "details: usr/share/doc/{PACKAGE}/copyright in the package"
    ));
    notes
}

/// Parses a `.svg` or `.svgz` deck file.
///
/// Cards kept inside `<defs>` are not part of the rendering tree, so they get a
/// `<use>` each first; [`render_card`] finds them through it.
pub fn load_deck(path: &Path) -> Result<usvg::Tree> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        usvg::decompress_svgz(&bytes)
            .with_context(|| format!("decompressing {}", path.display()))?
    } else {
        bytes
    };
    let text =
        std::str::from_utf8(&bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let text =
        use_cards_in_defs(text).with_context(|| format!("reading XML of {}", path.display()))?;
    let options = usvg::Options {
        resources_dir: path.parent().map(Path::to_path_buf),
        ..Default::default()
    };
    usvg::Tree::from_str(&text, &options).with_context(|| format!("parsing SVG {}", path.display()))
}

/// Whether an element id names a card (or a back or joker) and is safe to copy
/// into an attribute as is.
fn is_card_id(id: &str) -> bool {
    let safe = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let card = id
        .split_once('_')
        .is_some_and(|(rank, suit)| RANKS.contains(&rank) && SUITS.contains(&suit));
    let card = card || id == "back" || id.contains("joker");
    safe && card
}

/// Appends `<use id="dmlviz-use-ID" href="#ID"/>` to the root element for every
/// card that sits inside `<defs>`: usvg drops `<defs>` content from the tree,
/// so `node_by_id` would not find those cards otherwise.
fn use_cards_in_defs(text: &str) -> Result<Cow<'_, str>> {
    let options = usvg::roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = usvg::roxmltree::Document::parse_with_options(text, options)?;
    let in_defs = |node: &usvg::roxmltree::Node| {
        node.ancestors()
            .skip(1)
            .any(|a| a.is_element() && a.tag_name().name() == "defs")
    };
    let ids: Vec<&str> = doc
        .descendants()
        .filter(|n| n.is_element() && in_defs(n))
        .filter_map(|n| n.attribute("id"))
        .filter(|id| is_card_id(id))
        .collect();
    if ids.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    let end = doc.root_element().range().end;
    let close = text[..end]
        .rfind("</")
        .context("the root element has no closing tag")?;
    // The explicit namespace keeps the `<use>` an SVG element even when the
    // document spells its elements with a prefix (`<svg:svg>`).
    let uses: String = ids
        .iter()
        .map(|id| format!("<use xmlns=\"http://www.w3.org/2000/svg\" id=\"{USE_PREFIX}{id}\" href=\"#{id}\"/>"))
        .collect();
    Ok(Cow::Owned(format!(
        "{}{uses}{}",
        &text[..close],
        &text[close..]
    )))
}

/// The rendering node of a card: the element itself, or the `<use>` that
/// [`load_deck`] added for a card inside `<defs>`.
fn find_card<'a>(tree: &'a usvg::Tree, id: &str) -> Option<&'a usvg::Node> {
    tree.node_by_id(id)
        .or_else(|| tree.node_by_id(&format!("{USE_PREFIX}{id}")))
}

/// Canvas box of what a node actually draws: the union of the stroke boxes of
/// its visible leaves. The group's own layer box is not used because empty
/// groups count in it as a box at the origin, which makes it far too large.
fn drawn_bbox(node: &usvg::Node) -> Option<Rect> {
    let leaf = |rect: Rect| Some(rect).filter(|r| !r.is_empty());
    match node {
        usvg::Node::Group(group) => group
            .children()
            .iter()
            .filter_map(drawn_bbox)
            .reduce(|a, b| a.join(&b).unwrap_or(a)),
        usvg::Node::Path(path)
            if path.is_visible() && (path.fill().is_some() || path.stroke().is_some()) =>
        {
            leaf(path.abs_stroke_bounding_box())
        }
        usvg::Node::Path(_) => None,
        usvg::Node::Image(image) if image.is_visible() => leaf(image.abs_bounding_box()),
        usvg::Node::Image(_) => None,
        usvg::Node::Text(text) => leaf(text.abs_stroke_bounding_box()),
    }
}

/// Absolute transform of a node's parent. `resvg::render_node` applies only the
/// node's own transform, so the caller must supply everything above it.
fn parent_transform(node: &usvg::Node) -> Option<Transform> {
    match node {
        usvg::Node::Group(group) => Some(
            group
                .abs_transform()
                .pre_concat(group.transform().invert()?),
        ),
        // Leaves have no transform of their own: their absolute one is the parent's.
        other => Some(other.abs_transform()),
    }
}

/// Renders one card (by SVG element id, e.g. `"queen_heart"`) of an already-parsed
/// deck into an RGB image of the given height, aspect preserved, alpha composited
/// on white.
pub fn render_card(tree: &usvg::Tree, id: &str, height: u32) -> Result<image::RgbImage> {
    ensure!(height > 0, "card {id}: height must be positive");
    let node =
        find_card(tree, id).ok_or_else(|| anyhow!("no element with id {id:?} in the deck"))?;
    let bbox = drawn_bbox(node).ok_or_else(|| anyhow!("card {id} draws nothing"))?;
    let scale = height as f32 / bbox.height();
    let width = (bbox.width() * scale).round().max(1.0);
    ensure!(
        width <= 64.0 * height as f32,
        "card {id} is implausibly wide ({}x{})",
        bbox.width(),
        bbox.height()
    );
    let width = width as u32;

    let layer = node
        .abs_layer_bounding_box()
        .ok_or_else(|| anyhow!("card {id} has an empty layer box"))?;
    let parent =
        parent_transform(node).ok_or_else(|| anyhow!("card {id} has a singular transform"))?;
    // Read right to left: undo the layer-box shift render_node applies, place the
    // node as in the full document, then map the drawn box onto the image.
    let transform = Transform::from_scale(scale, scale)
        .pre_translate(-bbox.x(), -bbox.y())
        .pre_concat(parent)
        .pre_translate(layer.x(), layer.y());

    let mut pixmap = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| anyhow!("card {id}: cannot allocate a {width}x{height} image"))?;
    // Drawing onto opaque white composites the alpha on white directly.
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render_node(node, transform, &mut pixmap.as_mut())
        .ok_or_else(|| anyhow!("card {id} has zero size"))?;

    // Every pixel is opaque now, so premultiplied RGBA equals plain RGBA.
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    ensure!(rgb.iter().any(|&v| v != 255), "card {id} rendered blank");
    image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| anyhow!("card {id}: image buffer size mismatch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an SVG document to a temporary file and loads it as a deck.
    fn deck(svg: &str) -> usvg::Tree {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deck.svg");
        std::fs::write(&path, svg).unwrap();
        load_deck(&path).unwrap()
    }

    /// Fraction of pixels close to the given colour.
    fn share_of(image: &image::RgbImage, colour: [u8; 3]) -> f64 {
        let near = image
            .pixels()
            .filter(|p| p.0.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) < 8))
            .count();
        near as f64 / (image.width() * image.height()) as f64
    }

    const RED: [u8; 3] = [255, 0, 0];

    #[test]
    fn classes_are_in_suit_then_rank_order() {
        let cards = cards();
        assert_eq!(cards.len(), 52);
        assert_eq!(cards[0].id, "1_club");
        assert_eq!(cards[0].rank, "ace");
        assert_eq!(cards[12].id, "king_club");
        assert_eq!(cards[13].id, "1_diamond");
        assert_eq!(cards[40].id, "2_spade");
        assert_eq!(
            cards[51],
            Card {
                id: "king_spade".into(),
                rank: "king",
                suit: "spade"
            }
        );
        assert_eq!(class_folder_name(0, &cards[0].id), "0001.1_club");
    }

    #[test]
    fn renders_a_card_at_the_requested_height_with_its_aspect() {
        let tree = deck(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300">
                 <g id="queen_heart"><rect x="100" y="50" width="50" height="100" fill="red"/></g>
               </svg>"#,
        );
        let image = render_card(&tree, "queen_heart", 64).unwrap();
        assert_eq!((image.width(), image.height()), (32, 64));
        assert!(share_of(&image, RED) > 0.95);
    }

    #[test]
    fn finds_a_card_inside_defs() {
        let tree = deck(
            r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="300" height="300">
                 <defs>
                   <rect id="pip" width="50" height="100" fill="red"/>
                   <g id="queen_heart" transform="translate(200,100)"><use xlink:href="#pip"/></g>
                 </defs>
               </svg>"##,
        );
        let image = render_card(&tree, "queen_heart", 40).unwrap();
        assert_eq!((image.width(), image.height()), (20, 40));
        assert!(share_of(&image, RED) > 0.95);
    }

    #[test]
    fn empty_sibling_group_at_the_origin_does_not_widen_the_card() {
        let tree = deck(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">
                 <g id="king_spade">
                   <g id="empty"/>
                   <g><rect x="300" y="200" width="60" height="120" fill="red"/></g>
                 </g>
               </svg>"#,
        );
        let image = render_card(&tree, "king_spade", 60).unwrap();
        assert_eq!((image.width(), image.height()), (30, 60));
        assert!(
            share_of(&image, RED) > 0.95,
            "card shrunk or shifted: red share {}",
            share_of(&image, RED)
        );
    }

    #[test]
    fn parent_and_own_transforms_are_applied() {
        let tree = deck(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="1000">
                 <g transform="translate(500,300) scale(2)">
                   <g id="2_club" transform="translate(50,20)">
                     <rect width="40" height="60" fill="red"/>
                     <rect y="30" width="40" height="30" fill="blue"/>
                   </g>
                 </g>
               </svg>"#,
        );
        let image = render_card(&tree, "2_club", 60).unwrap();
        assert_eq!((image.width(), image.height()), (40, 60));
        // Top half red, bottom half blue: the card is in frame and upright.
        assert_eq!(image.get_pixel(20, 10).0, RED);
        assert_eq!(image.get_pixel(20, 50).0, [0, 0, 255]);
    }

    #[test]
    fn transparent_parts_become_white_and_landscape_cards_stay_landscape() {
        let tree = deck(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">
                 <g id="10_diamond">
                   <rect width="200" height="100" fill="red" fill-opacity="0"/>
                   <rect width="100" height="100" fill="red"/>
                 </g>
               </svg>"#,
        );
        let image = render_card(&tree, "10_diamond", 50).unwrap();
        assert_eq!((image.width(), image.height()), (100, 50));
        assert_eq!(image.get_pixel(10, 25).0, RED);
        assert_eq!(image.get_pixel(90, 25).0, [255, 255, 255]);
    }

    #[test]
    fn missing_and_blank_cards_are_errors_naming_the_card() {
        let tree = deck(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">
                 <g id="jack_club"><rect width="10" height="10" fill="white"/></g>
               </svg>"#,
        );
        let missing = render_card(&tree, "queen_club", 32).unwrap_err();
        assert!(format!("{missing:#}").contains("queen_club"));
        let blank = render_card(&tree, "jack_club", 32).unwrap_err();
        assert!(format!("{blank:#}").contains("jack_club"));
    }

    #[test]
    fn svgz_decks_load() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deck.svgz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g id="back"><rect width="5" height="5"/></g></svg>"#)
            .unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let tree = load_deck(&path).unwrap();
        assert!(render_card(&tree, "back", 8).is_ok());
        let err = load_deck(&dir.path().join("none.svgz")).unwrap_err();
        assert!(format!("{err:#}").contains("none.svgz"));
    }

    #[test]
    fn restricted_decks_need_consent_and_unknown_decks_are_errors() {
        let all = || {
            ["konqi-modern", "oxygen", "penguins"]
                .map(|n| Deck {
                    name: n.to_string(),
                    file: PathBuf::from(format!("{n}.svgz")),
                })
                .to_vec()
        };
        let names = |decks: Vec<Deck>| decks.into_iter().map(|d| d.name).collect::<Vec<_>>();
        let mut opts = CardsOptions::default();
        assert_eq!(
            names(select_decks(all(), &opts).unwrap()),
            ["oxygen", "penguins"]
        );
        opts.decks = Some(vec!["konqi-modern".into()]);
        assert!(select_decks(all(), &opts).is_err());
        opts.include_restricted = true;
        assert_eq!(names(select_decks(all(), &opts).unwrap()), ["konqi-modern"]);
        opts.decks = Some(vec!["nope".into()]);
        assert!(format!("{:#}", select_decks(all(), &opts).unwrap_err()).contains("nope"));
    }

    #[test]
    fn licences_follow_the_chosen_decks() {
        let notes = licences(&["oxygen", "penguins"]).join("\n");
        assert!(notes.contains("GPL-2+: decks oxygen"));
        assert!(notes.contains("Larry Ewing, Simon Budig and Anja Gerwinski"));
        assert!(!notes.contains("LGPL") && !notes.contains("KDE project"));
    }
}
