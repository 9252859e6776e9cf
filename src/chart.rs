//! Shared plotting style for `plotters` charts (embedding maps, training curves,
//! bar plots, heat maps): the embedded font, so text renders the same on every
//! machine without system fonts, and a class palette readable for many classes.

use plotters::style::{FontStyle, RGBColor};
use std::sync::Once;

/// Font family name every chart uses.
pub const FONT: &str = "sans-serif";

/// The embedded DejaVu Sans (TrueType), for text drawn without plotters.
pub static FONT_BYTES: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Registers the embedded DejaVu Sans under [`FONT`] for every style plotters uses.
/// Call before drawing any text; cheap after the first call.
pub fn register_fonts() {
    REGISTER.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // The font is compiled in and known to parse.
            plotters::style::register_font(FONT, style, FONT_BYTES)
                .unwrap_or_else(|_| panic!("embedded font does not parse"));
        }
    });
}

/// Tableau's 10 categorical colours, then 10 lighter partners (tab20).
const TAB20: [(u8, u8, u8); 20] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
];

/// One colour per class: tab20 up to 20 classes, beyond that hues spread by the
/// golden angle with alternating lightness, so neighbouring class indices differ.
pub fn class_colour(class: usize, classes: usize) -> RGBColor {
    if classes <= TAB20.len() {
        let (r, g, b) = TAB20[class % TAB20.len()];
        return RGBColor(r, g, b);
    }
    let hue = (class as f64 * 137.507_764) % 360.0;
    let (s, l) = match class % 3 {
        0 => (0.70, 0.45),
        1 => (0.85, 0.35),
        _ => (0.60, 0.60),
    };
    hsl(hue, s, l)
}

/// The colour as a CSS hex string (`#rrggbb`), for HTML/SVG written by hand.
pub fn css(colour: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", colour.0, colour.1, colour.2)
}

fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = l - c / 2.0;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(to(r), to(g), to(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_classes_get_distinct_colours() {
        let colours: std::collections::HashSet<_> =
            (0..200).map(|c| css(class_colour(c, 200))).collect();
        assert!(colours.len() >= 195, "{} distinct of 200", colours.len());
        assert_eq!(css(class_colour(0, 5)), "#1f77b4");
    }

    #[test]
    fn font_registers_and_measures_text() {
        register_fonts();
        use plotters::style::{IntoFont, TextStyle};
        let style: TextStyle = (FONT, 12).into_font().into();
        let (w, h) = style.font.box_size("hello").unwrap();
        assert!(w > 10 && h > 5, "{w}×{h}");
    }
}
