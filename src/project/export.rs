//! Files for other tools: a layout's coordinates as CSV, and the embeddings in the
//! TensorBoard projector's format (vectors, metadata, sprite, config).

use super::data::PhaseData;
use super::input::Matrix;
use super::sprites::{grid, tensorboard_cell};
use crate::atomic::write_atomic;
use crate::eval::report::csv_field;
use anyhow::Result;
use image::RgbImage;
use std::fmt::Write as _;
use std::path::Path;

/// The layout as CSV: `index,split,label,class,unseen,x,y,path`, one row per point
/// (index = row of the phase's train-then-test order; unseen = held-out class).
pub fn layout_csv(data: &PhaseData, layout: &Matrix) -> String {
    let mut out = String::from("index,split,label,class,unseen,x,y,path\n");
    for i in 0..data.len() {
        let _ = writeln!(
            out,
            "{i},{},{},{},{},{},{},{}",
            data.split[i].name(),
            data.labels[i],
            csv_field(data.class_name(i)),
            data.unseen(i),
            layout.row(i)[0],
            layout.row(i)[1],
            csv_field(&data.paths[i].display().to_string())
        );
    }
    out
}

/// A TSV field: tabs and line breaks would split the row, so they become spaces.
fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// Writes `dir/{vectors.tsv, metadata.tsv, sprite.jpg, projector_config.pbtxt}` for the
/// TensorBoard projector (point `dir` at it with `--logdir`). The sprite is one grid of
/// `thumbs`, `⌈√n⌉` cells a row as the projector expects, cells shrunk so the image
/// stays within its 8192 px limit; JPEG, as the projector loads any image the browser
/// does and a PNG of photos is several times larger.
pub fn tensorboard(data: &PhaseData, dir: &Path, thumbs: Option<&[RgbImage]>) -> Result<()> {
    let mut vectors = String::with_capacity(data.len() * data.embeddings.cols * 10);
    for i in 0..data.len() {
        let row: Vec<String> = data
            .embeddings
            .row(i)
            .iter()
            .map(|v| v.to_string())
            .collect();
        vectors.push_str(&row.join("\t"));
        vectors.push('\n');
    }
    write_atomic(&dir.join("vectors.tsv"), vectors.as_bytes())?;
    let mut meta = String::from("class\tsplit\tunseen\n");
    for i in 0..data.len() {
        let _ = writeln!(
            meta,
            "{}\t{}\t{}",
            tsv_field(data.class_name(i)),
            data.split[i].name(),
            data.unseen(i)
        );
    }
    write_atomic(&dir.join("metadata.tsv"), meta.as_bytes())?;
    let name = format!("dmlviz {}", data.phase.dir_name());
    let mut config =
        format!("embeddings {{\n  tensor_name: \"{name}\"\n  tensor_path: \"vectors.tsv\"\n  metadata_path: \"metadata.tsv\"\n");
    if let Some(thumbs) = thumbs {
        let n = thumbs.len();
        let columns = ((n as f64).sqrt().ceil() as u32).max(1);
        let cell = tensorboard_cell(n, 32);
        let sheet = grid(thumbs, cell, columns, (n as u32).div_ceil(columns).max(1));
        crate::imaging::write_jpeg(&dir.join("sprite.jpg"), &sheet)?;
        let _ = write!(
            config,
            "  sprite {{\n    image_path: \"sprite.jpg\"\n    single_image_dim: {cell}\n    single_image_dim: {cell}\n  }}\n"
        );
    }
    config.push_str("}\n");
    write_atomic(&dir.join("projector_config.pbtxt"), config.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::data::synthetic;

    #[test]
    fn csv_quotes_fields_and_tensorboard_files_line_up() {
        let mut data = synthetic(&["a,b", "say \"hi\"", "c\td"], 1, 6, 3, 3);
        data.paths[0] = std::path::PathBuf::from("x,y.png");
        let layout = Matrix::new(9, 2, (0..18).map(|v| v as f32).collect()).unwrap();
        let csv = layout_csv(&data, &layout);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "index,split,label,class,unseen,x,y,path");
        assert_eq!(lines[1], "0,train,0,\"a,b\",false,0,1,\"x,y.png\"");
        assert_eq!(
            lines[2],
            "1,train,1,\"say \"\"hi\"\"\",false,2,3,no/such/dir/1.png"
        );
        assert!(lines[9].starts_with("8,test,2,c\td,true,16,17,"));
        let dir = tempfile::tempdir().unwrap();
        let thumbs = vec![RgbImage::new(5, 5); 9];
        tensorboard(&data, dir.path(), Some(&thumbs)).unwrap();
        let vectors = std::fs::read_to_string(dir.path().join("vectors.tsv")).unwrap();
        let meta = std::fs::read_to_string(dir.path().join("metadata.tsv")).unwrap();
        assert_eq!(vectors.lines().count(), 9);
        assert!(vectors.lines().all(|l| l.split('\t').count() == 3));
        assert_eq!(meta.lines().count(), 10, "header + one row per point");
        assert_eq!(meta.lines().nth(9).unwrap(), "c d\ttest\ttrue");
        let config = std::fs::read_to_string(dir.path().join("projector_config.pbtxt")).unwrap();
        assert!(
            config.contains("single_image_dim: 32")
                && config.contains("metadata_path: \"metadata.tsv\"")
        );
        let sprite = image::open(dir.path().join("sprite.jpg")).unwrap();
        assert_eq!((sprite.width(), sprite.height()), (3 * 32, 3 * 32));
    }
}
