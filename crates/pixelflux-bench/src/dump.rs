//! `pixelflux-bench psnr`: quality of another capture's stripes (ours or upstream's, through
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
use pixelflux::{Codec, Scene};
use serde::Serialize;

use super::quality::{reconstruct, Received};
use pixelflux_testkit::psnr::{from_mse as psnr_from_mse, mse_bgrx};

use super::stats::{percentile, psnr_summary};

/// Magic bytes at the start of a dump.
pub const MAGIC: &[u8; 8] = b"PFXDUMP1";

#[derive(Debug, Args)]
pub struct PsnrArgs {
    /// The stripe dump.
    #[arg(long)]
    pub dump: PathBuf,
    /// The driver's frame log (`--drive-only --driver-log`); with --scene.
    #[arg(long, required_unless_present = "shots")]
    pub driver_log: Option<PathBuf>,
    /// The scene the driver drew.
    #[arg(long, required_unless_present = "shots")]
    pub scene: Option<Scene>,
    /// Instead of a scene: screenshots of a frozen application (JSON list of `{"t_ns",
    /// "path"}`, raw BGRX rows of the dump's size, each taken while nothing changed on the
    /// screen); each is compared with the picture the stripes delivered up to `t_ns` make.
    #[arg(long, conflicts_with_all = ["driver_log", "scene"])]
    pub shots: Option<PathBuf>,
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
        // 1.2.2's stripe type codes.
        let codec = match kind {
            1 => Codec::Jpeg,
            2 => Codec::H264,
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
                codec,
                frame_id,
                y,
                height: h,
                payload,
                copy: None,
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
        out.push(match s.stripe.codec {
            Codec::H264 => 2,
            _ => 1,
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

/// Driver frames that may have been on the screen when a picture stamped `t_ns` was grabbed
/// (it was delivered at `delivered_ns`): those drawn from `window_ns` before the stamp until the
/// delivery, and the one on the screen when that window opened. The delivery bounds it because
/// a library may stamp a frame before its grab actually runs (a late tick).
pub fn candidates(log: &[(u64, u64)], t_ns: u64, delivered_ns: u64, window_ns: u64) -> Vec<u64> {
    // A frame is logged after the server has applied it and the driver has read the reply;
    // on a loaded machine the driver may wait tens of ms for a core in between.
    let until = delivered_ns.max(t_ns) + LOG_LAG_NS;
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

/// How late the driver's log may stamp a frame that was already on the screen.
const LOG_LAG_NS: u64 = 100_000_000;

/// How far before its capture time a picture's source frame is looked for: more than any
/// capture latency seen here, even on a loaded machine.
const MATCH_WINDOW_NS: u64 = 1_000_000_000;

/// Rows per band when looking for torn pictures.
const BAND_ROWS: usize = 60;

/// A picture is torn when matching its bands one by one gains more than this (dB).
const TORN_DB: f64 = 3.0;

/// What `bench psnr` prints (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct PsnrOutcome {
    /// From the mean MSE of the samples, each against its best whole source frame.
    pub psnr_db: Option<f64>,
    /// The worst sample.
    pub psnr_min_db: Option<f64>,
    /// The median sample.
    pub psnr_median_db: Option<f64>,
    /// Each 60-row band against its own best source frame (the encoding alone).
    pub psnr_bandwise_db: Option<f64>,
    /// Screenshots only: the picture at the shot's time, after the screen had been still a
    /// while (`psnr_db` is the first picture showing the frozen screen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psnr_settled_db: Option<f64>,
    /// Samples showing parts of different source frames.
    pub torn_samples: usize,
    pub samples: usize,
    /// The driver frame each sample matched best.
    pub matched: Vec<u64>,
    /// Each sample's PSNR, dB.
    pub per_sample_db: Vec<f64>,
    /// Each sample's frame id in the dump.
    pub frame_ids: Vec<u64>,
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
    let mut frames: Vec<(u64, u64, u64)> = Vec::new();
    for s in &dump.stripes {
        let t = if s.capture_ns > 0 {
            s.capture_ns
        } else {
            s.callback_ns
        };
        if frames.last().map(|f| f.0) != Some(s.stripe.frame_id) {
            frames.push((s.stripe.frame_id, t, s.callback_ns));
        }
    }
    let start = dump
        .stripes
        .first()
        .map(|s| s.callback_ns)
        .unwrap_or_default();
    let eligible: Vec<(u64, u64, u64)> = frames
        .iter()
        .copied()
        .filter(|(_, t, _)| *t >= start + skip_ns)
        .collect();
    let eligible = if eligible.is_empty() {
        frames.clone()
    } else {
        eligible
    };
    let n = samples.min(eligible.len());
    let chosen: Vec<(u64, u64, u64)> = (0..n)
        .map(|i| eligible[i * eligible.len() / n.max(1)])
        .collect();
    if chosen.is_empty() {
        return Ok(PsnrOutcome {
            psnr_db: None,
            psnr_min_db: None,
            psnr_median_db: None,
            psnr_bandwise_db: None,
            psnr_settled_db: None,
            torn_samples: 0,
            samples: 0,
            matched: Vec::new(),
            per_sample_db: Vec::new(),
            frame_ids: Vec::new(),
        });
    }
    let received: Vec<Received> = dump.stripes.iter().map(|s| s.stripe.clone()).collect();
    let ids: Vec<u64> = chosen.iter().map(|c| c.0).collect();
    let canvases = reconstruct(&received, dump.width, dump.height, &ids)?;
    let cands: Vec<Vec<u64>> = chosen
        .iter()
        .map(|&(_, t, delivered)| candidates(log, t, delivered, MATCH_WINDOW_NS))
        .collect();
    let last = cands.iter().flatten().copied().max().unwrap_or(0);
    let stride = dump.width as usize * 4;
    let bands = (dump.height as usize).div_ceil(BAND_ROWS);
    let band = |data: &'_ [u8], b: usize| -> std::ops::Range<usize> {
        let start = b * BAND_ROWS * stride;
        start..(start + BAND_ROWS * stride).min(data.len())
    };
    let mut best: Vec<Option<(f64, u64)>> = vec![None; chosen.len()];
    let mut band_best: Vec<Vec<Option<(f64, u64)>>> = vec![vec![None; bands]; chosen.len()];
    let mut source = SyntheticSource::new(scene, dump.width, dump.height);
    for index in 0..=last {
        let frame = source.advance();
        for (k, c) in cands.iter().enumerate() {
            if c.binary_search(&index).is_ok() {
                let canvas = &canvases[k].data;
                let mut sum = 0.0;
                for (b, slot) in band_best[k].iter_mut().enumerate() {
                    let r = band(canvas, b);
                    let mse = mse_bgrx(&canvas[r.clone()], &frame.data[r.clone()]);
                    sum += mse * r.len() as f64;
                    if slot.is_none_or(|(m, _)| mse < m) {
                        *slot = Some((mse, index));
                    }
                }
                let mse = sum / canvas.len().max(1) as f64;
                if best[k].is_none_or(|(b, _)| mse < b) {
                    best[k] = Some((mse, index));
                }
            }
        }
    }
    let found: Vec<(f64, u64)> = best.into_iter().flatten().collect();
    let mses: Vec<f64> = found.iter().map(|f| f.0).collect();
    let summary = psnr_summary(&mses);
    // Each band against its own best frame: the encoding alone, whatever the timing.
    let band_mses: Vec<f64> = band_best
        .iter()
        .filter(|bands| bands.iter().all(|b| b.is_some()))
        .map(|bands| {
            // Weighted by rows: the last band may be short.
            let h = dump.height as usize;
            let weighted: f64 = bands
                .iter()
                .flatten()
                .enumerate()
                .map(|(b, m)| m.0 * (BAND_ROWS.min(h - b * BAND_ROWS)) as f64)
                .sum();
            weighted / h.max(1) as f64
        })
        .collect();
    // A picture whose bands match clearly better one by one than together shows parts of
    // different source frames: a torn frame.
    let torn = mses
        .iter()
        .zip(&band_mses)
        .filter(|(whole, banded)| psnr_from_mse(**banded) - psnr_from_mse(**whole) > TORN_DB)
        .count();
    let cap = |db: f64| db.min(super::PSNR_IDENTICAL_DB);
    Ok(PsnrOutcome {
        psnr_db: summary.map(|s| cap(s.0)),
        psnr_min_db: summary.map(|s| cap(s.1)),
        psnr_median_db: percentile(
            &mses
                .iter()
                .map(|m| cap(psnr_from_mse(*m)))
                .collect::<Vec<_>>(),
            50.0,
        ),
        psnr_bandwise_db: psnr_summary(&band_mses).map(|s| cap(s.0)),
        psnr_settled_db: None,
        torn_samples: torn,
        samples: mses.len(),
        matched: found.iter().map(|f| f.1).collect(),
        per_sample_db: mses.iter().map(|m| cap(psnr_from_mse(*m))).collect(),
        frame_ids: ids,
    })
}

/// A screenshot of a frozen screen and when it was known to be on the screen.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Shot {
    /// `CLOCK_MONOTONIC` ns, on the dump's clock: stripes delivered up to here count.
    pub t_ns: u64,
    /// When the application was stopped (0: unknown); the screen was still from shortly after.
    #[serde(default)]
    pub t_stop_ns: u64,
    /// Raw BGRX rows, `width * 4` bytes each.
    pub path: PathBuf,
}

/// A picture matching a screenshot at least this well shows the frozen screen (coded); one
/// still showing an earlier scroll position of text scores far lower.
const SHOWS_THE_SCREEN_DB: f64 = 30.0;

/// PSNR against each screenshot of two pictures the dump's stripes make: **in motion**, the
/// first picture after the application was stopped that shows the frozen screen (the last
/// change, coded as it was coded while the screen moved), and **settled**, the picture at the
/// shot's time (after whatever a library sends once a stripe stops changing: upstream 2.x
/// sends a few more pictures of a stripe that stopped changing, which refine it). A shot
/// without `t_stop_ns` has only the settled picture.
pub fn psnr_of_shots(
    dump: &Dump,
    shots: &[Shot],
    pictures: &[Vec<u8>],
) -> anyhow::Result<PsnrOutcome> {
    let size = dump.width as usize * dump.height as usize * 4;
    // Per shot: the frames that may show the frozen screen, in delivery order.
    let mut per_shot: Vec<(usize, Vec<u64>)> = Vec::new();
    for (k, (shot, data)) in shots.iter().zip(pictures).enumerate() {
        if data.len() != size {
            bail!(
                "a screenshot of {} bytes for a {size}-byte picture",
                data.len()
            );
        }
        let mut ids: Vec<u64> = Vec::new();
        let from = shot.t_stop_ns.min(shot.t_ns);
        // The frame on the screen when it stopped, then each one delivered until the shot.
        if let Some(s) = dump.stripes.iter().rev().find(|s| s.callback_ns <= from) {
            ids.push(s.stripe.frame_id);
        }
        for s in dump.stripes.iter() {
            if s.callback_ns > from
                && s.callback_ns <= shot.t_ns
                && ids.last() != Some(&s.stripe.frame_id)
            {
                ids.push(s.stripe.frame_id);
            }
        }
        if !ids.is_empty() {
            per_shot.push((k, ids));
        }
    }
    let all: Vec<u64> = per_shot
        .iter()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    let received: Vec<Received> = dump.stripes.iter().map(|s| s.stripe.clone()).collect();
    let canvases = reconstruct(&received, dump.width, dump.height, &all)?;
    let (mut motion, mut settled, mut ids_used) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    for (k, ids) in &per_shot {
        let mses: Vec<f64> = (0..ids.len())
            .map(|i| mse_bgrx(&canvases[at + i].data, &pictures[*k]))
            .collect();
        at += ids.len();
        let first = mses
            .iter()
            .position(|m| psnr_from_mse(*m) >= SHOWS_THE_SCREEN_DB)
            .unwrap_or(mses.len() - 1);
        motion.push(mses[first]);
        ids_used.push(ids[first]);
        settled.push(mses[mses.len() - 1]);
    }
    let summary = psnr_summary(&motion);
    let cap = |db: f64| db.min(super::PSNR_IDENTICAL_DB);
    let per_sample: Vec<f64> = motion.iter().map(|m| cap(psnr_from_mse(*m))).collect();
    Ok(PsnrOutcome {
        psnr_db: summary.map(|s| cap(s.0)),
        psnr_min_db: summary.map(|s| cap(s.1)),
        psnr_median_db: percentile(&per_sample, 50.0),
        psnr_bandwise_db: None,
        psnr_settled_db: psnr_summary(&settled).map(|s| cap(s.0)),
        torn_samples: 0,
        samples: motion.len(),
        matched: Vec::new(),
        per_sample_db: per_sample,
        frame_ids: ids_used,
    })
}

/// `pixelflux-bench psnr`.
pub fn run(args: PsnrArgs) -> anyhow::Result<()> {
    let dump = read_dump(std::io::BufReader::new(
        std::fs::File::open(&args.dump).with_context(|| format!("open {}", args.dump.display()))?,
    ))?;
    let outcome = match (&args.shots, &args.driver_log, args.scene) {
        (Some(path), _, _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("open {}", path.display()))?;
            let shots: Vec<Shot> = serde_json::from_str(&text)?;
            let mut pictures = Vec::new();
            for shot in &shots {
                pictures.push(
                    std::fs::read(&shot.path)
                        .with_context(|| format!("open {}", shot.path.display()))?,
                );
            }
            psnr_of_shots(&dump, &shots, &pictures)?
        }
        (None, Some(driver_log), Some(scene)) => {
            let log = read_driver_log(std::io::BufReader::new(
                std::fs::File::open(driver_log)
                    .with_context(|| format!("open {}", driver_log.display()))?,
            ))?;
            psnr_of_dump(&dump, &log, scene, args.samples, (args.skip * 1e9) as u64)?
        }
        _ => bail!("--shots, or --driver-log with --scene"),
    };
    println!("{}", serde_json::to_string(&outcome)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pixelflux::OwnedFrame;
    use pixelflux_testkit::reference_jpeg;

    #[test]
    fn candidates_cover_the_window_and_the_frame_before_it() {
        let ms = 1_000_000u64;
        let log: Vec<(u64, u64)> = (0..20).map(|i| (i, 1_000 * ms + i * 16 * ms)).collect();
        // Grabbed 1 ms after frame 7 was logged, with a 50 ms window: frames 4-7 were drawn
        // inside it, frame 3 was on the screen when it opened, and frames logged up to 100 ms
        // later (8-13) may have been on the screen before the driver could log them.
        let t = log[7].1 + ms;
        assert_eq!(
            candidates(&log, t, t, 50 * ms),
            vec![3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        );
        // Delivered 20 ms after the stamp: one more.
        assert_eq!(candidates(&log, t, t + 20 * ms, 50 * ms).last(), Some(&14));
        assert_eq!(candidates(&log, 10, 10, 5), Vec::<u64>::new());
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
                codec: Codec::Jpeg,
                frame_id: 0,
                y: 0,
                height: h,
                payload: reference_jpeg(&frames[4], 90),
                copy: None,
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
        assert_eq!(out.torn_samples, 0);
        assert!((out.psnr_bandwise_db.unwrap() - out.psnr_db.unwrap()).abs() < 0.5);
        assert!(out.psnr_db.unwrap() > 30.0, "{:?}", out.psnr_db);
        assert!(read_dump(&b"PFXDUMP0"[..]).is_err());
    }

    #[test]
    fn shots_compare_the_first_picture_of_the_frozen_screen_and_the_settled_one() {
        let (w, h) = (96u32, 64u32);
        let mut src = SyntheticSource::new(Scene::Full, w, h);
        let frames: Vec<OwnedFrame> = (0..3).map(|_| src.advance().clone()).collect();
        let stripe = |id: u64, f: &OwnedFrame, q: i32, t: u64| DumpStripe {
            stripe: Received {
                codec: Codec::Jpeg,
                frame_id: id,
                y: 0,
                height: h,
                payload: reference_jpeg(f, q),
                copy: None,
            },
            capture_ns: 0,
            callback_ns: t,
        };
        // Frame 0 on the screen; stopped at 150 with frame 2 up: delivered at 200 coarsely,
        // refined at 300 (as upstream does once a stripe stops changing).
        let dump = Dump {
            width: w,
            height: h,
            stripes: vec![
                stripe(0, &frames[0], 90, 100),
                stripe(1, &frames[2], 70, 200),
                stripe(2, &frames[2], 98, 300),
            ],
        };
        let shot = |t_stop_ns, t_ns| Shot {
            t_ns,
            t_stop_ns,
            path: PathBuf::new(),
        };
        let out = psnr_of_shots(&dump, &[shot(150, 350)], &[frames[2].data.clone()]).unwrap();
        assert_eq!(out.samples, 1);
        assert_eq!(
            out.frame_ids,
            vec![1],
            "the first picture of the frozen screen"
        );
        let (motion, settled) = (out.psnr_db.unwrap(), out.psnr_settled_db.unwrap());
        assert!(
            motion > 30.0 && settled > motion + 3.0,
            "{motion} / {settled}"
        );
        // Without the stop time: the picture at the shot's time only.
        let out = psnr_of_shots(&dump, &[shot(0, 250)], &[frames[2].data.clone()]).unwrap();
        assert_eq!(out.frame_ids, vec![1]);
        // The wrong picture scores far lower: the comparison can fail. A shot before
        // anything arrived is left out; a wrong size is an error.
        let wrong = psnr_of_shots(&dump, &[shot(0, 150)], &[frames[2].data.clone()]).unwrap();
        assert!(wrong.psnr_db.unwrap() + 5.0 < motion, "{wrong:?}");
        let none = psnr_of_shots(&dump, &[shot(0, 50)], &[frames[2].data.clone()]).unwrap();
        assert_eq!(none.samples, 0);
        assert!(psnr_of_shots(&dump, &[shot(0, 150)], &[vec![0; 4]]).is_err());
    }
}
