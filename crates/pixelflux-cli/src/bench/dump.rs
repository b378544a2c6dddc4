//! `pixelflux bench psnr`: quality of another capture's stripes (ours or upstream's, through
//! Python, written by `bench/compare.py`) against the frames the scene driver drew.
//!
//! A foreign capture does not tell which driver frame it grabbed, so each sampled picture is
//! compared with every driver frame that was on the screen shortly before its capture time and
//! the best match counts. The driver puts each frame in one request, so a grab never sees half
//! of one.
//!
//! Dump layout (little-endian): `PFXDUMP1`, u32 width, u32 height, then per stripe: u8 kind
//! (1 JPEG, 2 H.264), u64 frame_id, u32 y, u32 height, u64 capture_ns, u64 callback_ns,
//! u32 length, payload (no stripe header). Times are `CLOCK_MONOTONIC` ns; capture_ns 0 when
//! unknown.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use pixelflux::source::synthetic::SyntheticSource;
use pixelflux::{Scene, StripeKind};
use serde::Serialize;

use super::quality::{reconstruct, Received};
use super::stats::{mse_bgrx, psnr_summary};

/// Magic bytes at the start of a dump.
pub const MAGIC: &[u8; 8] = b"PFXDUMP1";

#[derive(Debug, Args)]
pub struct PsnrArgs {
    /// The stripe dump.
    #[arg(long)]
    pub dump: PathBuf,
    /// The driver's frame log (`--drive-only --driver-log`).
    #[arg(long)]
    pub driver_log: PathBuf,
    /// The scene the driver drew.
    #[arg(long)]
    pub scene: Scene,
    /// Pictures compared.
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    /// Ignore frames captured in the first this many seconds of the dump.
    #[arg(long, default_value_t = 0.5)]
    pub skip: f64,
}

/// A stripe of a dump with its times.
#[derive(Debug, Clone)]
pub struct DumpStripe {
    pub stripe: Received,
    pub capture_ns: u64,
    pub callback_ns: u64,
}

/// A parsed dump.
#[derive(Debug, Clone)]
pub struct Dump {
    pub width: u32,
    pub height: u32,
    pub stripes: Vec<DumpStripe>,
}

fn take<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// Reads a dump.
pub fn read_dump(mut r: impl Read) -> anyhow::Result<Dump> {
    let magic: [u8; 8] = take(&mut r).context("dump header")?;
    if &magic != MAGIC {
        bail!("not a stripe dump (bad magic)");
    }
    let width = u32::from_le_bytes(take(&mut r)?);
    let height = u32::from_le_bytes(take(&mut r)?);
    let mut stripes = Vec::new();
    loop {
        let kind = match take::<1>(&mut r) {
            Ok([k]) => k,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        };
        let kind = match kind {
            1 => StripeKind::Jpeg,
            2 => StripeKind::H264,
            k => bail!("unknown stripe kind {k} in dump"),
        };
        let frame_id = u64::from_le_bytes(take(&mut r)?);
        let y = u32::from_le_bytes(take(&mut r)?);
        let h = u32::from_le_bytes(take(&mut r)?);
        let capture_ns = u64::from_le_bytes(take(&mut r)?);
        let callback_ns = u64::from_le_bytes(take(&mut r)?);
        let len = u32::from_le_bytes(take(&mut r)?) as usize;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).context("truncated dump")?;
        stripes.push(DumpStripe {
            stripe: Received {
                kind,
                frame_id,
                y,
                height: h,
                payload,
            },
            capture_ns,
            callback_ns,
        });
    }
    Ok(Dump {
        width,
        height,
        stripes,
    })
}

/// Writes a dump (the layout `read_dump` reads; bench/compare.py writes the same).
#[cfg(test)]
pub fn write_dump(out: &mut Vec<u8>, width: u32, height: u32, stripes: &[DumpStripe]) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    for s in stripes {
        out.push(match s.stripe.kind {
            StripeKind::Jpeg => 1,
            StripeKind::H264 => 2,
        });
        out.extend_from_slice(&s.stripe.frame_id.to_le_bytes());
        out.extend_from_slice(&s.stripe.y.to_le_bytes());
        out.extend_from_slice(&s.stripe.height.to_le_bytes());
        out.extend_from_slice(&s.capture_ns.to_le_bytes());
        out.extend_from_slice(&s.callback_ns.to_le_bytes());
        out.extend_from_slice(&(s.stripe.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&s.stripe.payload);
    }
}

/// Reads the driver's `index t_ns` lines.
pub fn read_driver_log(r: impl BufRead) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for line in r.lines() {
        let line = line?;
        let mut it = line.split_whitespace();
        if let (Some(i), Some(t)) = (it.next(), it.next()) {
            out.push((i.parse()?, t.parse()?));
        }
    }
    Ok(out)
}

/// Driver frames that may have been on the screen when a picture was grabbed at `t_ns`: those
/// drawn in the `window_ns` before it, and the one on the screen when that window opened.
pub fn candidates(log: &[(u64, u64)], t_ns: u64, window_ns: u64) -> Vec<u64> {
    // A frame is logged just after the server applied it: allow the log a little lag.
    let until = t_ns + 2_000_000;
    let from = t_ns.saturating_sub(window_ns);
    let mut out: Vec<u64> = log
        .iter()
        .filter(|(_, t)| *t >= from && *t <= until)
        .map(|(i, _)| *i)
        .collect();
    if let Some((i, _)) = log.iter().rev().find(|(_, t)| *t < from) {
        out.push(*i);
    }
    out.sort_unstable();
    out
}

/// What `bench psnr` prints (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct PsnrOutcome {
    pub psnr_db: Option<f64>,
    pub psnr_min_db: Option<f64>,
    pub samples: usize,
    /// The driver frame each sample matched best.
    pub matched: Vec<u64>,
}

/// PSNR of a dump against a scene's frames, matching each sample to its driver frame.
pub fn psnr_of_dump(
    dump: &Dump,
    log: &[(u64, u64)],
    scene: Scene,
    samples: usize,
    skip_ns: u64,
) -> anyhow::Result<PsnrOutcome> {
    // When each frame was grabbed (or, failing that, delivered).
    let mut frames: Vec<(u64, u64)> = Vec::new();
    for s in &dump.stripes {
        let t = if s.capture_ns > 0 {
            s.capture_ns
        } else {
            s.callback_ns
        };
        if frames.last().map(|f| f.0) != Some(s.stripe.frame_id) {
            frames.push((s.stripe.frame_id, t));
        }
    }
    let start = dump
        .stripes
        .first()
        .map(|s| s.callback_ns)
        .unwrap_or_default();
    let eligible: Vec<(u64, u64)> = frames
        .iter()
        .copied()
        .filter(|(_, t)| *t >= start + skip_ns)
        .collect();
    let eligible = if eligible.is_empty() {
        frames.clone()
    } else {
        eligible
    };
    let n = samples.min(eligible.len());
    let chosen: Vec<(u64, u64)> = (0..n)
        .map(|i| eligible[i * eligible.len() / n.max(1)])
        .collect();
    if chosen.is_empty() {
        return Ok(PsnrOutcome {
            psnr_db: None,
            psnr_min_db: None,
            samples: 0,
            matched: Vec::new(),
        });
    }
    let received: Vec<Received> = dump.stripes.iter().map(|s| s.stripe.clone()).collect();
    let ids: Vec<u64> = chosen.iter().map(|c| c.0).collect();
    let canvases = reconstruct(&received, dump.width, dump.height, &ids)?;
    let cands: Vec<Vec<u64>> = chosen
        .iter()
        .map(|&(_, t)| candidates(log, t, 300_000_000))
        .collect();
    let last = cands.iter().flatten().copied().max().unwrap_or(0);
    let mut best: Vec<Option<(f64, u64)>> = vec![None; chosen.len()];
    let mut source = SyntheticSource::new(scene, dump.width, dump.height);
    for index in 0..=last {
        let frame = source.advance();
        for (k, c) in cands.iter().enumerate() {
            if c.binary_search(&index).is_ok() {
                let mse = mse_bgrx(&canvases[k].data, &frame.data);
                if best[k].is_none_or(|(b, _)| mse < b) {
                    best[k] = Some((mse, index));
                }
            }
        }
    }
    let found: Vec<(f64, u64)> = best.into_iter().flatten().collect();
    let mses: Vec<f64> = found.iter().map(|f| f.0).collect();
    let summary = psnr_summary(&mses);
    Ok(PsnrOutcome {
        psnr_db: summary.map(|s| s.0.min(super::PSNR_IDENTICAL_DB)),
        psnr_min_db: summary.map(|s| s.1.min(super::PSNR_IDENTICAL_DB)),
        samples: mses.len(),
        matched: found.iter().map(|f| f.1).collect(),
    })
}

/// `pixelflux bench psnr`.
pub fn run(args: PsnrArgs) -> anyhow::Result<()> {
    let dump = read_dump(std::io::BufReader::new(
        std::fs::File::open(&args.dump).with_context(|| format!("open {}", args.dump.display()))?,
    ))?;
    let log = read_driver_log(std::io::BufReader::new(
        std::fs::File::open(&args.driver_log)
            .with_context(|| format!("open {}", args.driver_log.display()))?,
    ))?;
    let outcome = psnr_of_dump(
        &dump,
        &log,
        args.scene,
        args.samples,
        (args.skip * 1e9) as u64,
    )?;
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflux::OwnedFrame;

    fn jpeg(frame: &OwnedFrame) -> Vec<u8> {
        let image = turbojpeg::Image {
            pixels: frame.data.as_slice(),
            width: frame.width as usize,
            pitch: frame.stride(),
            height: frame.height as usize,
            format: turbojpeg::PixelFormat::BGRX,
        };
        turbojpeg::compress(image, 90, turbojpeg::Subsamp::Sub2x2)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn candidates_cover_the_window_and_the_frame_before_it() {
        let ms = 1_000_000u64;
        let log: Vec<(u64, u64)> = (0..10).map(|i| (i, 1_000 * ms + i * 16 * ms)).collect();
        // Grabbed 1 ms after frame 7 was logged, with a 50 ms window: frames 4-7 were drawn
        // inside it, frame 3 was on the screen when it opened; frame 8 is too late.
        let t = log[7].1 + ms;
        assert_eq!(candidates(&log, t, 50 * ms), vec![3, 4, 5, 6, 7]);
        assert_eq!(candidates(&log, 10, 5), Vec::<u64>::new());
    }

    #[test]
    fn dumps_round_trip_and_match_the_right_driver_frame() {
        let (w, h) = (96u32, 64u32);
        let mut src = SyntheticSource::new(Scene::Full, w, h);
        let frames: Vec<OwnedFrame> = (0..6).map(|_| src.advance().clone()).collect();
        // A capture that grabbed driver frame 4 as its frame 0, 100 ms into the log.
        let log: Vec<(u64, u64)> = (0..6)
            .map(|i| (i, 1_000_000_000 + i * 16_000_000))
            .collect();
        let t = log[4].1 + 1_000_000;
        let stripes = vec![DumpStripe {
            stripe: Received {
                kind: StripeKind::Jpeg,
                frame_id: 0,
                y: 0,
                height: h,
                payload: jpeg(&frames[4]),
            },
            capture_ns: t,
            callback_ns: t + 5_000_000,
        }];
        let mut bytes = Vec::new();
        write_dump(&mut bytes, w, h, &stripes);
        let dump = read_dump(bytes.as_slice()).unwrap();
        assert_eq!((dump.width, dump.height, dump.stripes.len()), (w, h, 1));
        assert_eq!(dump.stripes[0].stripe.payload, stripes[0].stripe.payload);
        let out = psnr_of_dump(&dump, &log, Scene::Full, 3, 0).unwrap();
        assert_eq!(out.samples, 1);
        assert_eq!(out.matched, vec![4]);
        assert!(out.psnr_db.unwrap() > 30.0, "{:?}", out.psnr_db);
        assert!(read_dump(&b"PFXDUMP0"[..]).is_err());
    }
}
