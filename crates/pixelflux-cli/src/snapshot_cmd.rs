//! `pixelflux snapshot`: write the first frame a source produces as a PNG (or PPM) image —
//! the reference picture the browser tests compare the streamed canvas with.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use pixelflux::CaptureSettings;

use crate::options::SourceOptions;

/// Image formats `pixelflux snapshot` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// PNG, 8-bit RGB.
    Png,
    /// Binary PPM (P6), 8-bit RGB.
    Ppm,
}

/// Options of `pixelflux snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub source: SourceOptions,
    /// Where to write the picture.
    #[arg(long)]
    pub out: PathBuf,
    /// Image format (default: by the file name: .png, .ppm or .pnm; PNG without an
    /// extension; any other extension is refused unless --format is given).
    #[arg(long, value_enum)]
    pub format: Option<ImageFormat>,
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    // Before capturing: a name the picture cannot have fails at once.
    let format = match args.format {
        Some(format) => format,
        None => format_for(&args.out)?,
    };
    let mut settings = CaptureSettings::default();
    let spec = args.source.resolve(&mut settings)?;
    let config = pixelflux::PipelineConfig::new(&settings)?;
    let mut source = spec.open(&config)?;
    let frame = source.grab()?;
    let view = frame.view();
    let (width, height) = (view.width, view.height);
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for px in view.row(y).chunks_exact(4) {
            // BGRX in memory.
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    let image = match format {
        ImageFormat::Png => png_bytes(width, height, &rgb)?,
        ImageFormat::Ppm => {
            let mut ppm = Vec::with_capacity(32 + rgb.len());
            write!(ppm, "P6\n{width} {height}\n255\n")?;
            ppm.extend_from_slice(&rgb);
            ppm
        }
    };
    std::fs::write(&args.out, image)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(())
}

/// The format a file name asks for: PPM for `.ppm`/`.pnm`, PNG for `.png` or no extension;
/// any other extension (`.jpg`: a PNG inside would be mislabelled) is a usage error naming these.
fn format_for(path: &Path) -> anyhow::Result<ImageFormat> {
    let Some(ext) = path.extension() else {
        return Ok(ImageFormat::Png);
    };
    let is = |name: &str| ext.eq_ignore_ascii_case(name);
    if is("png") {
        Ok(ImageFormat::Png)
    } else if is("ppm") || is("pnm") {
        Ok(ImageFormat::Ppm)
    } else {
        // A usage error (status 2), like any option the command cannot run with.
        Err(crate::options::UsageError(format!(
            "--out: snapshot writes PNG (.png) or PPM (.ppm, .pnm), not {:?}: name the file \
             so, or pass --format png|ppm",
            path.display().to_string()
        ))
        .into())
    }
}

/// `rgb` (packed 8-bit RGB, `width` x `height`) as a PNG file.
fn png_bytes(width: u32, height: u32, rgb: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("PNG header")?;
    writer.write_image_data(rgb).context("PNG data")?;
    writer.finish().context("PNG end")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_file_name() {
        let format = |name: &str| format_for(Path::new(name)).ok();
        assert_eq!(format("a/frame.ppm"), Some(ImageFormat::Ppm));
        assert_eq!(format("frame.PNM"), Some(ImageFormat::Ppm));
        assert_eq!(format("frame.png"), Some(ImageFormat::Png));
        assert_eq!(format("frame"), Some(ImageFormat::Png));
        for other in ["x.jpg", "x.JPEG", "x.webp", "dir.d/x.gif"] {
            let err = format_for(Path::new(other)).unwrap_err().to_string();
            assert!(
                err.contains(".png") && err.contains(".ppm") && err.contains("--format"),
                "{other}: {err}"
            );
        }
    }
}
