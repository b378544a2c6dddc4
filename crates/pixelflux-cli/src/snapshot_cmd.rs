//! `pixelflux snapshot`: write the first frame a source produces as a PPM image — the
//! reference picture the browser tests compare the streamed canvas with.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::options::CaptureOptions;

/// Options of `pixelflux snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub options: CaptureOptions,
    /// Where to write the picture (binary PPM, P6).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    let (settings, spec) = args.options.resolve()?;
    let config = pixelflux::PipelineConfig::new(&settings)?;
    let mut source = spec.open(&config)?;
    let frame = source.grab()?;
    let view = frame.view();
    let mut ppm = Vec::with_capacity(32 + view.width as usize * view.height as usize * 3);
    write!(ppm, "P6\n{} {}\n255\n", view.width, view.height)?;
    for y in 0..view.height {
        for px in view.row(y).chunks_exact(4) {
            ppm.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    std::fs::write(&args.out, ppm).with_context(|| format!("cannot write {:?}", args.out))?;
    Ok(())
}
