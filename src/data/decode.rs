//! Reading image files safely: a cheap header check used when a dataset is opened,
//! and full decoding to RGB (grey, palette and alpha images handled) with size limits.

use anyhow::{bail, Context, Result};
use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::Path;

/// Largest accepted side, in pixels: bigger files are treated as unreadable, not decoded
/// (a 100 000² PNG "bomb" would otherwise take gigabytes).
pub const MAX_SIDE: u32 = 12_000;
/// Largest decoder allocation accepted, in bytes; also the largest file read whole.
pub const MAX_ALLOC: u64 = 512 << 20;

/// File extensions the loaders treat as images (the codecs this build has): those of
/// torchvision's ImageFolder that the image crate decodes. A GIF gives its first frame.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"];

/// True when the path's extension names an image format we decode.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// A reader with its format guessed from the content (a format of [`IMAGE_EXTENSIONS`])
/// and our limits.
fn prepared<R: BufRead + Seek>(reader: ImageReader<R>, path: &Path) -> Result<ImageReader<R>> {
    let mut reader = reader
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?;
    if reader.format().is_none() {
        bail!(
            "{}: not an image of a known format ({})",
            path.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    reader.limits(limits());
    Ok(reader)
}

fn reader(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
    let file = ImageReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    prepared(file, path)
}

/// Where a JPEG's bytes stop short, if they do: `None` when its end-of-image marker is
/// reached. JPEG decoders fill a cut-off image with grey and report success, so this
/// walks the marker segments (by their lengths) and the entropy-coded scans (byte by
/// byte: there a 0xFF is always followed by 0x00, a restart code or the next marker).
fn jpeg_truncation(bytes: &[u8]) -> Option<&'static str> {
    let n = bytes.len();
    let mut i = 2; // after the start-of-image marker
    while i + 1 < n {
        if bytes[i] != 0xFF {
            i += 1; // scan data
            continue;
        }
        match bytes[i + 1] {
            0xD9 => return None, // end of image
            // Fill byte, stuffed zero, restart markers, TEM, a stray SOI: no length.
            0xFF => i += 1,
            0x00 | 0x01 | 0xD0..=0xD8 => i += 2,
            _ => {
                if i + 3 >= n {
                    return Some("ends inside a segment header");
                }
                let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
                if len < 2 {
                    return Some("has a segment of impossible length");
                }
                i += 2 + len;
            }
        }
    }
    Some("ends before its end-of-image marker")
}

/// Refuses a JPEG file cut short. Cheap for whole files: one that ends with the
/// end-of-image marker is accepted from its last two bytes; any other (cut short, or
/// with bytes after its end) is read and walked by [`jpeg_truncation`].
fn check_jpeg_complete(path: &Path) -> Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut tail = [0u8; 2];
    let ends_with_eoi = file.seek(SeekFrom::End(-2)).is_ok()
        && file.read_exact(&mut tail).is_ok()
        && tail == [0xFF, 0xD9];
    if ends_with_eoi {
        return Ok(());
    }
    let bytes = read_whole(path)?;
    match jpeg_truncation(&bytes) {
        Some(why) => bail!("{}: truncated JPEG (its data {why})", path.display()),
        None => Ok(()),
    }
}

/// The bytes of a file no larger than [`MAX_ALLOC`].
fn read_whole(path: &Path) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("opening {}", path.display()))?
        .len();
    if size > MAX_ALLOC {
        bail!(
            "{}: file of {} MB, larger than the limit of {} MB",
            path.display(),
            size >> 20,
            MAX_ALLOC >> 20
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads only the header (and, for a JPEG, its last bytes): the image's (width, height),
/// or why the file is unusable (missing, not an image, zero-sized, larger than
/// [`MAX_SIDE`], a truncated JPEG).
pub fn check_header(path: &Path) -> Result<(u32, u32)> {
    let reader = reader(path)?;
    let format = reader.format();
    let (w, h) = reader
        .into_dimensions()
        .with_context(|| format!("{}: unreadable image header", path.display()))?;
    if w == 0 || h == 0 {
        bail!("{}: image is empty ({w}×{h})", path.display());
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        bail!(
            "{}: image is {w}×{h}, larger than the limit of {MAX_SIDE} px per side",
            path.display()
        );
    }
    if format == Some(ImageFormat::Jpeg) {
        check_jpeg_complete(path)?;
    }
    Ok((w, h))
}

/// Decodes a file fully into RGB: grey and palette images are expanded, transparent
/// pixels are composited on white (emoji and card images are transparent). A JPEG cut
/// short is an error, not an image padded with grey.
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = read_whole(path)?;
    let reader = prepared(ImageReader::new(std::io::Cursor::new(&bytes)), path)?;
    if reader.format() == Some(ImageFormat::Jpeg) {
        if let Some(why) = jpeg_truncation(&bytes) {
            bail!("{}: truncated JPEG (its data {why})", path.display());
        }
    }
    let image = reader
        .decode()
        .with_context(|| format!("{}: corrupt or truncated image", path.display()))?;
    Ok(flatten_on_white(image))
}

/// Converts any image to RGB, compositing its alpha channel (if any) on white.
pub fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (src, dst) in rgba.pixels().zip(out.pixels_mut()) {
        let a = src[3] as u32;
        for c in 0..3 {
            // Rounded a·x + (1−a)·255 in integer arithmetic.
            dst[c] = ((src[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgba, RgbaImage};

    #[test]
    fn alpha_is_composited_on_white() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, Rgba([0, 0, 0, 0])); // transparent black → white
        img.put_pixel(1, 0, Rgba([0, 100, 200, 128])); // half transparent
        let rgb = flatten_on_white(DynamicImage::ImageRgba8(img));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        // 0·128/255 + 255·127/255 = 127; 100·128/255 + 127 = 177.2; 200·128/255 + 127 = 227.4
        assert_eq!(rgb.get_pixel(1, 0).0, [127, 177, 227]);
    }

    #[test]
    fn grey_images_become_rgb_and_headers_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        GrayImage::from_pixel(3, 2, Luma([90])).save(&path).unwrap();
        assert_eq!(check_header(&path).unwrap(), (3, 2));
        let rgb = decode_rgb(&path).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(2, 1).0, [90, 90, 90]);
    }

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.png");
        std::fs::write(&text, b"this is not an image").unwrap();
        let err = format!("{:#}", check_header(&text).unwrap_err());
        assert!(err.contains("notes.png"), "{err}");

        let missing = dir.path().join("missing.jpg");
        let err = format!("{:#}", check_header(&missing).unwrap_err());
        assert!(err.contains("missing.jpg"), "{err}");

        // A valid header with the pixel data cut off passes the header check but not decoding.
        let full = dir.path().join("full.png");
        image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 3, 7]))
            .save(&full)
            .unwrap();
        let bytes = std::fs::read(&full).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(check_header(&cut).is_ok());
        let err = format!("{:#}", decode_rgb(&cut).unwrap_err());
        assert!(
            err.contains("cut.png") && err.contains("corrupt or truncated"),
            "{err}"
        );
    }

    fn chelsea() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/photos/chelsea.jpg"
        ))
        .unwrap()
    }

    #[test]
    fn a_truncated_jpeg_is_refused_by_the_header_check_and_the_decoder() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = chelsea();
        assert_eq!(bytes.len(), 25_809);
        let whole = dir.path().join("chelsea.jpg");
        std::fs::write(&whole, &bytes).unwrap();
        assert!(check_header(&whole).is_ok());
        assert!(decode_rgb(&whole).is_ok());
        // The reproduction: the first 6 000 bytes, which the decoder alone accepts.
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &bytes[..6_000]).unwrap();
        for err in [
            check_header(&cut).unwrap_err(),
            decode_rgb(&cut).unwrap_err(),
        ] {
            let err = format!("{err:#}");
            assert!(
                err.contains("cut.jpg") && err.contains("truncated JPEG"),
                "{err}"
            );
        }
        // Every cut after the header is caught, the last byte missing included.
        for len in [2_000, 12_000, 20_000, bytes.len() - 1] {
            assert!(jpeg_truncation(&bytes[..len]).is_some(), "cut at {len}");
        }
    }

    #[test]
    fn bytes_after_the_end_of_a_jpeg_are_not_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = chelsea();
        bytes.extend_from_slice(&[0u8; 100]); // some cameras pad their files
        let padded = dir.path().join("padded.jpg");
        std::fs::write(&padded, &bytes).unwrap();
        assert!(check_header(&padded).is_ok());
        assert_eq!(decode_rgb(&padded).unwrap().dimensions(), (385, 256));
    }

    #[test]
    fn oversized_images_are_refused_from_the_header() {
        // A PNG header announcing 20000×10 pixels: refused without decoding.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.png");
        let mut buf = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut buf);
        image::ImageEncoder::write_image(
            enc,
            &vec![0u8; 20_000 * 10],
            20_000,
            10,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        std::fs::write(&path, buf).unwrap();
        let err = format!("{:#}", check_header(&path).unwrap_err());
        assert!(err.contains("huge.png") && err.contains("limit"), "{err}");
    }
}
