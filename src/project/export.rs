//! Files for other tools: a layout's coordinates as CSV, and the embeddings in the
//! TensorBoard projector's format (vectors, metadata, sprite, config).

use super::data::PhaseData;
use super::input::Matrix;
use super::map::SpriteInfo;
use crate::atomic::{write_atomic, write_png};
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

/// Writes `dir/{vectors.tsv, metadata.tsv, sprite.png, projector_config.pbtxt}` for the
/// TensorBoard projector (point `dir` at it with `--logdir`). `sprite` is the
/// thumbnail grid (cells of `info.cell` px, `⌈√n⌉` per row as the projector expects).
pub fn tensorboard(
    data: &PhaseData,
    dir: &Path,
    sprite: Option<(&RgbImage, &SpriteInfo)>,
) -> Result<()> {
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
    if let Some((image, info)) = sprite {
        write_png(
            &dir.join("sprite.png"),
            &image::DynamicImage::ImageRgb8(image.clone()),
        )?;
        let _ = write!(
            config,
            "  sprite {{\n    image_path: \"sprite.png\"\n    single_image_dim: {0}\n    single_image_dim: {0}\n  }}\n",
            info.cell
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
        let sheet = RgbImage::new(9, 9);
        let info = SpriteInfo {
            cell: 3,
            columns: 3,
            rows: 3,
            count: 9,
        };
        tensorboard(&data, dir.path(), Some((&sheet, &info))).unwrap();
        let vectors = std::fs::read_to_string(dir.path().join("vectors.tsv")).unwrap();
        let meta = std::fs::read_to_string(dir.path().join("metadata.tsv")).unwrap();
        assert_eq!(vectors.lines().count(), 9);
        assert!(vectors.lines().all(|l| l.split('\t').count() == 3));
        assert_eq!(meta.lines().count(), 10, "header + one row per point");
        assert_eq!(meta.lines().nth(9).unwrap(), "c d\ttest\ttrue");
        let config = std::fs::read_to_string(dir.path().join("projector_config.pbtxt")).unwrap();
        assert!(
            config.contains("single_image_dim: 3")
                && config.contains("metadata_path: \"metadata.tsv\"")
        );
        assert!(dir.path().join("sprite.png").exists());
    }
}
