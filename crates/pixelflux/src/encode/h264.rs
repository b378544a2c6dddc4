//! H.264 stripes: one x264 encoder per stripe, kept across frames, fed BGRX converted to I420
//! (baseline profile) or, with `h264_fullcolor`, I444 (High 4:4:4 Predictive).
//!
//! Every call produces one whole access unit behind the 10-byte header of [`crate::wire`]; the
//! header's frame type is what x264 actually produced. A new encoder starts with an IDR; a
//! `keyframe` request forces one (SPS/PPS in front) at the quantizer x264 gave the first
//! picture ([`x264::Encoder::first_picture_qp`], CRF 25: QP 22). Left to rate control, an IDR
//! right after another I picture (a refresh of a still screen, where unchanged stripes are not
//! encoded in between) takes its quantizer from its own complexity, QP 33–35 on detailed
//! content (about 30 dB instead of 43.6 dB), and one after P pictures takes theirs; see
//! `docs/h264.md`.
//!
//! A `paint_over` request is an IDR at quantizer `min(h264_crf, 10)` for that one picture,
//! forced per picture (`i_qpplus1`); rate control is untouched, so the next picture is back at
//! `h264_crf`. Changing the CRF with `x264_encoder_reconfig` instead was measured and does not
//! work here: an I picture after P pictures takes its quantizer from the running average of
//! the P pictures, so on a 256x64 test stripe at CRF 25 the paint-over came out at 35.4 dB
//! (CRF 35: 27.9 dB), against 45.0 dB with the forced quantizer (a fresh CRF-10 encoder:
//! 45.3 dB).
//!
//! Sizes: x264 needs even sizes for 4:2:0, and browsers' decoders expect them too, so in
//! H.264 mode the capture region is rounded down to even (see [`crate::config`]); stripe
//! heights are even by validation.

use super::color::YuvPlanes;
use super::mbinfo::ConstantBlocks;
use super::x264::{self, Chroma, PictureType};
use super::{EncodeError, EncodeOutcome, EncodeRequest, StripeEncoder, StripeKind, StripePlace};
use crate::config::{EncoderConfig, H264Config, H264Rate};
use crate::frame::FrameRef;
use crate::wire::{self, H264FrameType};

/// Highest quantizer a paint-over picture is encoded at (1.2.2 used this bound as a CRF).
pub const PAINT_OVER_MAX_QP: u8 = 10;

/// The per-stripe H.264 encoder.
#[derive(Debug)]
pub struct H264Encoder {
    encoder: x264::Encoder,
    planes: YuvPlanes,
    /// The macroblocks unchanged since the last picture, told to x264 (`mb_info`); `None`
    /// only in the benchmark that measures what telling costs and saves.
    constant: Option<ConstantBlocks>,
    /// Pictures left to encode without comparing for `mb_info`, after one where most
    /// macroblocks changed (see [`MB_INFO_PAUSE_AFTER_MOTION`]).
    mb_info_paused: u32,
    /// Whether only the rows that changed since the last picture are converted and compared
    /// (see [`YuvPlanes::convert_changed`]); `false` only in the tests and the benchmark that
    /// hold it against converting every row.
    changed_rows_only: bool,
    config: H264Config,
    /// The frame rate the open x264 encoder counts in; a later one rescales the bitrate.
    opened_fps: f64,
    /// Under CBR: the factor on the bitrate given to x264 that makes what it delivers meet
    /// the target (see [`Feedback`]).
    feedback: Feedback,
    /// Under CBR: the part of the stream's rate this stripe may spend (its rows over the rows
    /// of the stripes sent in the last frame; see [`StripeEncoder::set_rate_share`]), at first
    /// its rows over the frame's.
    fraction: f64,
    /// Which motion search the pictures use; `None` where a test fixes it.
    search: Option<SearchChoice>,
}

/// Picks x264's motion search per stripe by what it saves: `umh` finds whole-line scrolls
/// (a terminal printing a log: 0.32x the bytes of `dia`), `dia` costs 8-17% fewer x264
/// instructions a picture on everything else (a pan, a steady scroll, video), where both find
/// the move (x264 also tries the last picture's vectors). Content cannot say which it is
/// cheaply (a scroll inside a window beside still ones is no move of whole rows), so the
/// encoder tries: while pictures move ([`moves`]), now and then one is encoded with the
/// other search, and its size against the recent median decides.
///
/// One picture's size varies a lot (measured: 0.4-2x the median on a 2-pixel pan, 0.5-4x
/// on the synthetic scroll scene, with either search, picture for picture the same), so a
/// switch takes two probes in a row that win: `umh` below [`UMH_GAIN`] of `dia`'s recent
/// median, `dia` at most [`DIA_LOSS`] of `umh`'s. A stripe starts on `umh`, the cheaper
/// mistake (a few pictures of CPU, where `dia` on a terminal's scroll costs up to 7x the
/// bytes). `umh` probes `dia` after [`PROBE_BASE`] moving pictures, then at twice the last
/// gap (up to [`PROBE_GAP_MAX`]) while `dia` loses by far ([`DIA_FAR`]), since a `dia` probe
/// on a big scroll costs two or three pictures' bytes, or turns out worse than its probes
/// once switched to ([`DIA_REGRET`]); `dia` probes `umh` [`PROBE_BASE`] pictures into each
/// motion and every [`PROBE_EVERY_DIA`] moving pictures. A still picture forgets the sizes
/// (what moves next may be other content); IDRs and paint-overs do not count.
#[derive(Debug, Clone, Copy)]
struct SearchChoice {
    mode: x264::MotionSearch,
    /// Sizes of the last [`RECENT`] moving P pictures in `mode` (a ring, `next` the slot to
    /// write), whose median a probe is held against: a median, as one picture in four of a
    /// pan can be 3x the others.
    recent: [usize; RECENT],
    next: usize,
    /// Moving P pictures in `mode` since it was chosen or motion began (saturating).
    pictures: u32,
    /// Moving pictures in `mode` since the last probe.
    since_probe: u32,
    /// Moving pictures between probes of `dia` while on `umh`.
    umh_gap: u32,
    /// Just switched to `dia`: `umh`'s median then, which `dia`'s first [`RECENT`] pictures
    /// are held against (`None` once they were, and on `umh`).
    umh_median: Option<f64>,
    /// The last probe won: the next moving picture probes again, to confirm.
    confirming: bool,
    /// The picture being encoded is a probe of the other search.
    probing: bool,
}

/// Two probes of `umh` in a row below this fraction of `dia`'s median switch to `umh`.
const UMH_GAIN: f64 = 0.85;
/// Two probes of `dia` in a row at most this multiple of `umh`'s median switch to `dia`.
const DIA_LOSS: f64 = 1.0;
/// A probe of `dia` above this multiple of `umh`'s median lost by far (a terminal's scroll:
/// 2-7x): the next probe waits twice as long. A near miss (content where both searches find
/// the move) keeps the gap.
const DIA_FAR: f64 = 1.5;
/// `dia`'s first [`RECENT`] pictures after a switch with a median above this multiple of
/// `umh`'s before it switch back (and the next probe of `dia` waits twice as long).
const DIA_REGRET: f64 = 1.1;
/// Moving pictures measured before a probe.
const PROBE_BASE: u32 = 4;
/// Moving pictures whose median a probe is held against.
const RECENT: usize = 8;
/// Moving pictures between probes of `umh` while on `dia`.
const PROBE_EVERY_DIA: u32 = 16;
/// The longest gap between probes of `dia` while on `umh`, in moving pictures.
const PROBE_GAP_MAX: u32 = 256;

impl SearchChoice {
    fn new() -> Self {
        Self {
            mode: x264::MotionSearch::Umh,
            recent: [0; RECENT],
            next: 0,
            pictures: 0,
            since_probe: 0,
            umh_gap: PROBE_BASE,
            umh_median: None,
            confirming: false,
            probing: false,
        }
    }

    /// The median size of the recent moving pictures in `mode` (0 with none).
    fn median(&self) -> f64 {
        let filled = (self.pictures as usize).min(RECENT);
        let mut sizes = self.recent;
        let sizes = &mut sizes[..filled];
        sizes.sort_unstable();
        sizes.get(filled / 2).copied().unwrap_or(0) as f64
    }

    /// Switches to the other search, forgetting the sizes.
    fn switch(&mut self) {
        self.umh_median = (self.mode == x264::MotionSearch::Umh)
            .then(|| self.median())
            .filter(|&m| m > 0.0);
        self.mode = self.mode.other();
        self.pictures = 0;
        self.next = 0;
        self.since_probe = 0;
        self.confirming = false;
        tracing::debug!(search = ?self.mode, "motion search switched");
    }

    fn probe_every(&self) -> u32 {
        match self.mode {
            x264::MotionSearch::Dia => PROBE_EVERY_DIA,
            x264::MotionSearch::Umh => self.umh_gap,
        }
    }

    /// Forgets the sizes: a new motion begins.
    fn restart(&mut self) {
        self.pictures = 0;
        self.next = 0;
        self.confirming = false;
        self.umh_median = None;
        // On `dia`, `umh` is tried PROBE_BASE pictures into a motion: a terminal that starts
        // scrolling pays up to 7x the bytes until then. On `umh` the probes keep their gap.
        if self.mode == x264::MotionSearch::Dia {
            self.since_probe = self.since_probe.max(PROBE_EVERY_DIA - PROBE_BASE);
        }
    }

    /// The search for the next picture: a P picture that moves (`Some(true)`), one that does
    /// not, or one that nothing is known of or no P picture (`None`).
    fn for_picture(&mut self, moving_p: Option<bool>) -> x264::MotionSearch {
        self.probing = moving_p == Some(true)
            && self.pictures >= PROBE_BASE
            && (self.confirming || self.since_probe >= self.probe_every());
        if self.probing {
            self.mode.other()
        } else {
            self.mode
        }
    }

    /// What the picture [`for_picture`](Self::for_picture) was asked for came to: `moving_p`
    /// as given there (`None` also when x264 produced nothing), `bytes` its size.
    fn encoded(&mut self, moving_p: Option<bool>, bytes: usize) {
        let probing = std::mem::take(&mut self.probing);
        match moving_p {
            Some(true) => {}
            Some(false) => return self.restart(),
            None => return,
        }
        if probing {
            let median = self.median();
            let bytes = bytes as f64;
            self.since_probe = 0;
            let won = match self.mode {
                x264::MotionSearch::Dia => bytes < UMH_GAIN * median,
                x264::MotionSearch::Umh => bytes <= DIA_LOSS * median,
            };
            let confirmed = self.confirming;
            self.confirming = won && !confirmed;
            if won && confirmed {
                if self.mode == x264::MotionSearch::Dia {
                    self.umh_gap = PROBE_BASE;
                }
                self.switch();
            } else if self.mode == x264::MotionSearch::Umh && bytes > DIA_FAR * median {
                self.umh_gap = (self.umh_gap * 2).min(PROBE_GAP_MAX);
            }
            return;
        }
        self.recent[self.next] = bytes;
        self.next = (self.next + 1) % RECENT;
        self.pictures = self.pictures.saturating_add(1);
        self.since_probe = self.since_probe.saturating_add(1);
        // A probe of `dia` follows the vectors `umh` found in the pictures before it (x264's
        // temporal candidates), so it can look as good as `umh` where `dia` alone falls
        // behind (a terminal whose scroll changes pace). Its first RECENT pictures decide.
        if let Some(umh_median) = self.umh_median.filter(|_| self.pictures as usize >= RECENT) {
            if self.median() > DIA_REGRET * umh_median {
                self.umh_gap = (self.umh_gap * 2).min(PROBE_GAP_MAX);
                self.switch();
            } else {
                self.umh_median = None;
            }
        }
    }
}

/// x264's one-pass ABR misjudges how many bits a lower quantizer buys on screen content that
/// predicts well (a pan, scrolled text): measured on the synthetic full-motion scene at 720p
/// it settled at 0.55–0.8x the target and at QP 15 with bits to spare, and ffmpeg's libx264
/// does the same on `testsrc` (0.68x). So the encoder watches what it delivers against the
/// stripe's share of the target over windows of a quarter second of its pictures and scales
/// the rate it gives x264 (`x264_encoder_reconfig`, no IDR) by the ratio's square root, from
/// 0.5x to [`MAX_BOOST`]x. Only pictures encoded count: a stripe that did not change is not
/// asked to make up for it.
#[derive(Debug, Clone, Copy)]
struct Feedback {
    boost: f64,
    bits: u64,
    /// What the window's pictures were allowed, in bits.
    budget: f64,
    frames: u32,
}

/// Highest factor the feedback puts on the target (bounds a burst when easy content that
/// could not spend its share turns hard).
const MAX_BOOST: f64 = 4.0;

impl Default for Feedback {
    fn default() -> Self {
        Self {
            boost: 1.0,
            bits: 0,
            budget: 0.0,
            frames: 0,
        }
    }
}

impl H264Encoder {
    /// An encoder for `width` x `height` stripes as `config` asks (CRF or constant bitrate,
    /// chroma, quantizer bounds, x264's own threads).
    pub fn new(config: &H264Config, width: u32, height: u32) -> Result<Self, EncodeError> {
        let chroma = if config.fullcolor {
            Chroma::I444
        } else {
            Chroma::I420
        };
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(EncodeError::OddSize { width, height });
        }
        let fraction = height_fraction(config, height);
        let encoder = Self::open(config, width, height, chroma, fraction)?;
        Ok(Self {
            encoder,
            planes: YuvPlanes::new(width, height, chroma),
            constant: Some(ConstantBlocks::default()),
            mb_info_paused: 0,
            changed_rows_only: true,
            config: *config,
            opened_fps: usable_fps(config.fps),
            feedback: Feedback::default(),
            fraction,
            search: (!x264::fixed_search()).then(SearchChoice::new),
        })
    }

    /// An x264 encoder for `config`, under CBR at `share` of the stream's rate (the stripe's
    /// fraction times the feedback's boost).
    fn open(
        config: &H264Config,
        width: u32,
        height: u32,
        chroma: Chroma,
        share: f64,
    ) -> Result<x264::Encoder, EncodeError> {
        let fps = usable_fps(config.fps);
        x264::Encoder::open(x264::Config {
            width,
            height,
            chroma,
            crf: config.crf as f32,
            threads: config.threads,
            fps,
            cbr: cbr_share(config, share, fps),
            qp_min: config.min_qp,
            qp_max: config.max_qp,
        })
        .map_err(EncodeError::H264)
    }

    /// Reopens the encoder when the stripe's size changed (the next picture is then an IDR).
    fn fit(&mut self, width: u32, height: u32) -> Result<(), EncodeError> {
        if (self.planes.width(), self.planes.height()) == (width, height) {
            return Ok(());
        }
        let chroma = self.planes.chroma();
        tracing::debug!("stripe size changed to {width}x{height}: new H.264 encoder");
        self.fraction = height_fraction(&self.config, height);
        self.encoder = Self::open(&self.config, width, height, chroma, self.fraction)?;
        self.opened_fps = usable_fps(self.config.fps);
        self.feedback = Feedback::default();
        self.planes = YuvPlanes::new(width, height, chroma);
        if let Some(c) = &mut self.constant {
            c.reset();
        }
        Ok(())
    }

    /// `qp` within `video_min_qp`/`video_max_qp` (where set).
    fn bounded(&self, qp: u8) -> u8 {
        let qp = if self.config.min_qp > 0 {
            qp.max(self.config.min_qp)
        } else {
            qp
        };
        if self.config.max_qp > 0 {
            qp.min(self.config.max_qp)
        } else {
            qp
        }
    }

    fn cbr(&self) -> bool {
        matches!(self.config.rate, H264Rate::Cbr { .. })
    }

    /// Counts a CBR picture of `bytes` and, at the end of a window, moves the boost.
    fn delivered(&mut self, bytes: usize) -> Result<(), EncodeError> {
        let H264Rate::Cbr { kbps, .. } = self.config.rate else {
            return Ok(());
        };
        let fps = usable_fps(self.config.fps);
        let fb = &mut self.feedback;
        fb.bits += bytes as u64 * 8;
        fb.budget += f64::from(kbps) * 1000.0 * self.fraction / fps;
        fb.frames += 1;
        let window = (fps / 8.0).round().max(1.0) as u32;
        if fb.frames < window {
            return Ok(());
        }
        let ratio = fb.budget / (fb.bits.max(1) as f64);
        fb.boost = (fb.boost * ratio.clamp(0.25, 4.0).sqrt()).clamp(0.5, MAX_BOOST);
        fb.bits = 0;
        fb.budget = 0.0;
        fb.frames = 0;
        self.send_share()
    }

    /// Gives x264 the stripe's current share (fraction times boost), if it changed.
    fn send_share(&mut self) -> Result<(), EncodeError> {
        let share = self.fraction * self.feedback.boost;
        if let Some(cbr) = cbr_share(&self.config, share, self.opened_fps) {
            self.encoder.set_cbr(cbr).map_err(EncodeError::H264)?;
        }
        Ok(())
    }

    /// Encodes the picture in the planes, `rows` of which were converted from `pixels` this
    /// time (the rest are unchanged since the last picture).
    fn encode_planes(
        &mut self,
        pixels: FrameRef<'_>,
        request: &EncodeRequest,
        place: StripePlace,
        rows: std::ops::Range<u32>,
        out: &mut Vec<u8>,
    ) -> Result<Option<EncodeOutcome>, EncodeError> {
        // Every key frame after the first is one we ask for (infinite GOP, no scene cuts):
        // paint-overs at their own quantizer, refreshes at the quantizer x264 gives a stream's
        // first picture, as rate control would make a refresh after another I picture
        // far coarser (see the module documentation).
        // Under a constant bitrate the rate control sets the quantizer of a requested key
        // frame too. A paint-over (a stripe that stopped changing) is the one picture outside
        // it, as under CRF, since the rate control alone leaves a still stripe coarse; x264's
        // VBV would raise a forced quantizer row by row (measured: 14 dB instead of 45), so
        // it is coded by a CRF encoder of its own and the stripe's CBR encoder starts over
        // (its next picture an IDR, which the paint-over IDR before it makes a clean cut).
        let cbr = self.cbr();
        let cbr_encoder = if cbr && request.paint_over {
            let crf = H264Config {
                rate: H264Rate::Crf,
                ..self.config
            };
            let chroma = self.planes.chroma();
            let (w, h) = (self.planes.width(), self.planes.height());
            // The still picture's encoder stands in for this call only; `fresh` takes over
            // after it.
            let share = self.fraction * self.feedback.boost;
            let fresh = Self::open(&self.config, w, h, chroma, share)?;
            self.encoder = Self::open(&crf, w, h, chroma, 1.0)?;
            self.opened_fps = usable_fps(self.config.fps);
            Some(fresh)
        } else {
            None
        };
        let qp = if request.paint_over {
            Some(self.config.crf.min(PAINT_OVER_MAX_QP))
        } else if request.keyframe && !cbr {
            Some(self.encoder.first_picture_qp())
        } else {
            None
        };
        let qp = qp.map(|q| self.bounded(q));
        let force_idr = request.keyframe || request.paint_over;
        wire::write_h264_header(
            out,
            H264FrameType::Other,
            place.frame_id as u32,
            place.y,
            pixels.width,
            pixels.height,
        );
        let header_len = out.len();
        let planes = self.planes.planes();
        let (w, h) = (self.planes.width(), self.planes.height());
        let chroma = self.planes.chroma();
        // Whether the picture moves (see `moves`; most macroblocks changed, now or within the
        // pause); `None` where nothing says (the first comparison after a pause primes its
        // copy).
        let mut moving = None;
        let mb_info = match self.constant.as_mut() {
            Some(constant) if self.mb_info_paused > 0 => {
                // No comparison and no copy of the planes: the next comparison starts over
                // from a whole copy.
                self.mb_info_paused -= 1;
                constant.reset();
                moving = Some(true);
                None
            }
            Some(constant) => match constant.update(&planes, (w, h), chroma, rows) {
                Some(flags) if mostly_changed(flags) => {
                    self.mb_info_paused = MB_INFO_PAUSE_AFTER_MOTION;
                    moving = Some(true);
                    None
                }
                flags => {
                    moving = flags.as_deref().map(moves);
                    flags
                }
            },
            None => None,
        };
        // An IDR is no P picture to compare.
        let moving_p = if force_idr { None } else { moving };
        if let Some(choice) = self.search.as_mut() {
            let search = choice.for_picture(moving_p);
            // A refused switch costs only the saving: the stripe keeps its search.
            if let Err(e) = self.encoder.set_motion_search(search) {
                tracing::warn!("motion search stays as it is: {e}");
                self.search = None;
            }
        }
        let produced = self
            .encoder
            .encode_with(planes, force_idr, qp, mb_info, out)
            .map_err(EncodeError::H264);
        if let Some(fresh) = cbr_encoder {
            self.encoder = fresh;
        }
        let produced = produced?;
        if let Some(choice) = self.search.as_mut() {
            let moving_p = moving_p.filter(|_| produced.is_some());
            choice.encoded(moving_p, out.len().saturating_sub(header_len));
        }
        let Some(picture) = produced else {
            out.clear();
            return Ok(None);
        };
        let frame_type = match picture {
            PictureType::Idr => H264FrameType::Idr,
            PictureType::I => H264FrameType::Intra,
            PictureType::P | PictureType::Other => H264FrameType::Other,
        };
        out[1] = frame_type as u8;
        if cbr && !request.paint_over {
            self.delivered(out.len() - header_len)?;
        }
        Ok(Some(EncodeOutcome {
            kind: StripeKind::H264(frame_type),
            header_len,
        }))
    }
}

/// Whether more than half of a picture's macroblocks changed (`mb_info` flags of 0), in which
/// case x264 is not told which did not. x264 codes a macroblock flagged constant with a zero
/// motion vector: as a skip where the predicted vector is zero, else as a 16x16 block with
/// its vector spelled out. In a scroll or a pan the flagged ones are flat areas amid moved
/// content, whose neighbours predict the move, so each costs a vector and breaks the
/// neighbours' prediction: measured on the synthetic scroll (two 1080p stripes, 30-36% of the
/// macroblocks unchanged), 8.6% more bytes than with no flags at 0.6 M fewer x264 instructions
/// a picture; unchanged on typing and video (at most a third changed). See
/// docs/PERFORMANCE.md ("Instruction counts").
fn mostly_changed(flags: &[u8]) -> bool {
    flags.iter().filter(|&&f| f == 0).count() * 2 > flags.len()
}

/// Whether enough of a picture changed for its motion search to matter: at least a sixteenth
/// of its macroblocks (`mb_info` flags of 0). Typing and a blinking cursor do not move a
/// picture; a scroll or a video in a window does (the synthetic `video` scene's 640x360 in a
/// 1920x544 stripe: 11%).
fn moves(flags: &[u8]) -> bool {
    flags.iter().filter(|&&f| f == 0).count() * 16 >= flags.len()
}

/// Pictures encoded without `mb_info` after one where most macroblocks changed (see
/// [`mostly_changed`]), skipping the comparison and the copy of the planes it needs: under
/// continuous motion (a scroll, a pan, full-screen video) x264 would not be told anyway, and
/// comparing and copying 3 MB of planes a 1080p picture is memory-bound (measured with
/// `perf record` on the X11 scroll: 7-8% of the capture's CPU time for 3% of its
/// instructions). The picture after them is compared against a fresh copy of the planes, so
/// flags are back one picture later, as after a new encoder.
pub const MB_INFO_PAUSE_AFTER_MOTION: u32 = 8;

/// A stripe of `rows`' fraction of the frame.
fn height_fraction(config: &H264Config, rows: u32) -> f64 {
    f64::from(rows) / f64::from(config.frame_height.max(rows).max(1))
}

fn usable_fps(fps: f64) -> f64 {
    if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        60.0
    }
}

/// What x264 is given under a constant bitrate for `share` of the stream's rate, for an
/// encoder that counts in `opened_fps`: scaled by `opened_fps / fps` when the capture's frame
/// rate changed since (x264 cannot change its own, and what it spends per frame is its rate
/// over its frame rate), and a VBV buffer of `vbv_frames` frames of that share.
fn cbr_share(config: &H264Config, share: f64, opened_fps: f64) -> Option<x264::Cbr> {
    let H264Rate::Cbr { kbps, vbv_frames } = config.rate else {
        return None;
    };
    let fps = usable_fps(config.fps);
    let share = f64::from(kbps) * share;
    let per_frame_kbit = share / fps;
    Some(x264::Cbr {
        kbps: (share * opened_fps / fps)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32,
        vbv_kbit: (per_frame_kbit * vbv_frames)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32,
    })
}

impl StripeEncoder for H264Encoder {
    fn encode(
        &mut self,
        pixels: FrameRef<'_>,
        request: &EncodeRequest,
        place: StripePlace,
        out: &mut Vec<u8>,
    ) -> Result<Option<EncodeOutcome>, EncodeError> {
        self.fit(pixels.width, pixels.height)?;
        let h = self.planes.height();
        let rows = if self.changed_rows_only {
            self.planes.convert_changed(pixels)
        } else {
            self.planes.convert(pixels).map(|()| 0..h)
        };
        let rows = rows.map_err(EncodeError::Color)?;
        let result = self.encode_planes(pixels, request, place, rows, out);
        if result.is_err() {
            // The planes and the macroblock comparison must see the same pictures: start both
            // over from a whole picture.
            self.planes.forget_previous();
            if let Some(constant) = self.constant.as_mut() {
                constant.reset();
            }
        }
        result
    }

    fn retune(&mut self, config: &EncoderConfig) -> Result<(), EncodeError> {
        let EncoderConfig::H264(config) = config else {
            return Ok(());
        };
        self.config = *config;
        self.send_share()
    }

    fn set_rate_share(&mut self, fraction: f64) -> Result<(), EncodeError> {
        let fraction = fraction.clamp(height_fraction(&self.config, self.planes.height()), 1.0);
        // x264 is told only of a change of more than 5 % (each is a reconfig).
        if !self.cbr() || (fraction / self.fraction - 1.0).abs() <= 0.05 {
            return Ok(());
        }
        self.fraction = fraction;
        self.send_share()
    }
}

#[cfg(test)]
mod tests {
    use super::super::x264::vcl_and_headers;
    use super::*;
    use crate::frame::OwnedFrame;

    fn settings(crf: u8, fullcolor: bool) -> H264Config {
        H264Config {
            crf,
            rate: H264Rate::Crf,
            min_qp: 0,
            max_qp: 0,
            frame_height: 1080,
            fullcolor,
            threads: 1,
            fps: 60.0,
            lossless_stills: false,
        }
    }

    /// Blocks of colour and fine grey strokes: something with detail to lose.
    fn picture(w: u32, h: u32, seed: u32) -> OwnedFrame {
        let mut f = OwnedFrame::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = ((y * w + x) * 4) as usize;
                let v = match ((x / 8) * 3 + (y / 8) * 5 + seed) % 4 {
                    0 => [40, 120, 200, 0],
                    1 if (x + 2 * y + seed) % 5 < 2 => [20, 20, 20, 0],
                    1 => [230, 230, 230, 0],
                    2 => [(x * 4) as u8, (y * 4) as u8, 90, 0],
                    _ => [10, 200, 60, 0],
                };
                f.data[i..i + 4].copy_from_slice(&v);
            }
        }
        f
    }

    fn request(keyframe: bool, paint_over: bool) -> EncodeRequest {
        EncodeRequest {
            jpeg_quality: 85,
            paint_over,
            keyframe,
        }
    }

    fn run(
        enc: &mut H264Encoder,
        f: &OwnedFrame,
        req: EncodeRequest,
        frame_id: u64,
    ) -> (Vec<u8>, EncodeOutcome) {
        let mut out = Vec::new();
        let outcome = enc
            .encode(f.view(), &req, StripePlace { frame_id, y: 64 }, &mut out)
            .unwrap()
            .expect("x264 produced a picture");
        (out, outcome)
    }

    #[test]
    fn header_and_frame_types_follow_what_x264_produced() {
        let f = picture(128, 32, 0);
        let mut enc = H264Encoder::new(&settings(25, false), 128, 32).unwrap();
        let (first, o) = run(&mut enc, &f, request(false, false), 7);
        assert_eq!(
            o.kind.h264_frame_type(),
            Some(H264FrameType::Idr),
            "a new encoder starts with an IDR"
        );
        assert_eq!(o.header_len, 10);
        assert_eq!(&first[..10], &[4, 1, 0, 7, 0, 64, 0, 128, 0, 32]);
        assert_eq!(vcl_and_headers(&first[10..]), [7, 8, 5]);
        let (second, o) = run(&mut enc, &picture(128, 32, 1), request(false, false), 8);
        assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Other));
        assert_eq!(second[1], 0);
        assert!(!crate::wire::nal_types(&second[10..]).contains(&7));
        let (third, o) = run(&mut enc, &f, request(true, false), 9);
        assert_eq!(
            o.kind.h264_frame_type(),
            Some(H264FrameType::Idr),
            "keyframe forces an IDR"
        );
        assert_eq!(vcl_and_headers(&third[10..]), [7, 8, 5]);
    }

    #[test]
    fn paint_over_is_an_idr_at_low_qp_once() {
        // Two encoders see the same pictures; at one step `painted` gets a paint-over where
        // `plain` gets an ordinary key frame.
        let f = picture(256, 64, 2);
        let mut painted = H264Encoder::new(&settings(35, false), 256, 64).unwrap();
        let mut plain = H264Encoder::new(&settings(35, false), 256, 64).unwrap();
        let mut both = |pic: &OwnedFrame, keyframe: bool, paint: bool, id: u64| {
            let a = run(&mut painted, pic, request(keyframe, paint), id);
            let b = run(&mut plain, pic, request(keyframe, false), id);
            (a, b)
        };
        both(&f, false, false, 0);
        // P pictures first: the case where changing the CRF alone did not help.
        for i in 0..3 {
            let ((_, o), _) = both(&picture(256, 64, 5 + i), false, false, 1 + i as u64);
            assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Other));
        }
        both(&f, false, false, 4);
        let ((paint, o), (normal_idr, _)) = both(&f, true, true, 5);
        assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Idr));
        assert_eq!(vcl_and_headers(&paint[10..]), [7, 8, 5]);
        // Same pixels, both IDRs: the paint-over spends far more bits (QP 10 vs CRF 35).
        assert!(
            paint.len() * 10 > 18 * normal_idr.len(),
            "paint-over {} bytes vs IDR at CRF 35 {} bytes",
            paint.len(),
            normal_idr.len()
        );
        // Only that picture: the next key frame is back at the normal rate.
        let ((again, _), (again_plain, _)) = both(&f, true, false, 6);
        let ratio = again.len() as f64 / again_plain.len() as f64;
        assert!(
            (0.7..1.4).contains(&ratio),
            "key frame after a paint-over: {ratio:.2}x the size without"
        );
    }

    #[test]
    fn a_requested_key_frame_is_coded_like_the_first_picture() {
        // x264 alone: an IDR right after the first one came out at QP 33–35 instead of 22
        // (CRF 25), one after P pictures anywhere from 10 to 26 (docs/h264.md).
        let f = picture(256, 64, 4);
        for (p_pictures, changing) in [(0, false), (1, false), (5, false), (40, false), (5, true)] {
            let mut enc = H264Encoder::new(&settings(25, false), 256, 64).unwrap();
            let (first, _) = run(&mut enc, &f, request(false, false), 0);
            let first_qp = enc.encoder.last_qp();
            assert_eq!(
                first_qp,
                Some(enc.encoder.first_picture_qp()),
                "x264's own quantizer for a first picture at CRF 25"
            );
            assert_eq!(first_qp, Some(22));
            for i in 0..p_pictures {
                let pic = if changing {
                    picture(256, 64, 9 + i)
                } else {
                    f.clone()
                };
                let (_, o) = run(&mut enc, &pic, request(false, false), 1 + i as u64);
                assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Other));
            }
            let (refresh, o) = run(&mut enc, &f, request(true, false), 100);
            assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Idr));
            assert_eq!(
                enc.encoder.last_qp(),
                first_qp,
                "refresh after {p_pictures} P pictures (changing: {changing})"
            );
            // Same pixels, same quantizer: the same picture give or take the headers and the
            // version SEI x264 puts into the very first one only.
            let ratio = refresh.len() as f64 / first.len() as f64;
            assert!(
                (0.9..=1.02).contains(&ratio),
                "refresh {} bytes vs first {} bytes",
                refresh.len(),
                first.len()
            );
        }
    }

    #[test]
    fn quantizers_stay_within_min_and_max_qp() {
        // A constant bitrate far too low for changing detail: x264 goes above QP 30 on its
        // own, and not with video_max_qp 30 (the first IDR included).
        let cbr = |min_qp, max_qp| H264Config {
            rate: H264Rate::Cbr {
                kbps: 30,
                vbv_frames: 1.5,
            },
            min_qp,
            max_qp,
            frame_height: 64,
            ..settings(25, false)
        };
        let mut free = H264Encoder::new(&cbr(0, 0), 256, 64).unwrap();
        let mut capped = H264Encoder::new(&cbr(0, 30), 256, 64).unwrap();
        let (mut free_qps, mut capped_qps) = (Vec::new(), Vec::new());
        for i in 0..40 {
            let pic = picture(256, 64, i);
            let keyframe = i == 20;
            run(&mut free, &pic, request(keyframe, false), u64::from(i));
            run(&mut capped, &pic, request(keyframe, false), u64::from(i));
            free_qps.extend(free.encoder.last_qp());
            capped_qps.extend(capped.encoder.last_qp());
        }
        assert!(free_qps.iter().any(|&q| q > 30), "{free_qps:?}");
        assert!(capped_qps.iter().all(|&q| q <= 30), "{capped_qps:?}");
        // CRF 10 with video_min_qp 35: every picture at 35 or above, including the forced
        // quantizers of a requested key frame and a paint-over.
        let crf = H264Config {
            min_qp: 35,
            ..settings(10, false)
        };
        let mut floored = H264Encoder::new(&crf, 256, 64).unwrap();
        let mut qps = Vec::new();
        for i in 0..12 {
            let req = request(i == 5, i == 9);
            run(&mut floored, &picture(256, 64, i), req, u64::from(i));
            qps.extend(floored.encoder.last_qp());
        }
        assert_eq!(qps.len(), 12);
        assert!(qps.iter().all(|&q| q >= 35), "{qps:?}");
    }

    #[test]
    fn a_crf_encoder_takes_no_bitrate() {
        let mut enc = H264Encoder::new(&settings(25, false), 64, 16).unwrap();
        let err = enc
            .encoder
            .set_cbr(x264::Cbr {
                kbps: 100,
                vbv_kbit: 10,
            })
            .unwrap_err();
        assert!(err.to_string().contains("constant bitrate"), "{err}");
    }

    #[test]
    fn odd_sizes_and_fullcolor() {
        let err = H264Encoder::new(&settings(25, false), 101, 64).unwrap_err();
        assert!(
            matches!(
                err,
                EncodeError::OddSize {
                    width: 101,
                    height: 64
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("even"), "{err}");
        let mut enc = H264Encoder::new(&settings(25, true), 64, 16).unwrap();
        let (out, o) = run(&mut enc, &picture(64, 16, 3), request(false, false), 0);
        assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Idr));
        // SPS profile_idc (first byte after the SPS NAL header) is 244: High 4:4:4 Predictive.
        let sps = out[10..]
            .windows(4)
            .position(|w| w == [0, 0, 1, 0x67])
            .expect("an SPS");
        assert_eq!(out[10 + sps + 4], 244);
    }

    #[test]
    fn a_size_change_reopens_the_encoder_with_an_idr() {
        let mut enc = H264Encoder::new(&settings(25, false), 64, 16).unwrap();
        run(&mut enc, &picture(64, 16, 0), request(false, false), 0);
        let (out, o) = run(&mut enc, &picture(64, 32, 0), request(false, false), 1);
        assert_eq!(o.kind.h264_frame_type(), Some(H264FrameType::Idr));
        assert_eq!(&out[8..10], &[0, 32]);
    }

    /// Converting and comparing only the rows that changed gives x264 exactly the pictures
    /// and `mb_info` that converting every row does: the same bytes, picture by picture, over
    /// the first picture, small changes (across macroblock rows, on the last row, none at
    /// all), a refresh, a paint-over and a size change, in 4:2:0 and 4:4:4.
    #[test]
    fn changed_rows_only_encode_the_same_bytes_as_whole_pictures() {
        let (w, h) = (96u32, 80u32);
        for fullcolor in [false, true] {
            let mut partial = H264Encoder::new(&settings(25, fullcolor), w, h).unwrap();
            let mut whole = H264Encoder::new(&settings(25, fullcolor), w, h).unwrap();
            whole.changed_rows_only = false;
            let mut frame = picture(w, h, 0);
            let dot = |f: &mut OwnedFrame, x: u32, y: u32, v: u8| {
                let i = ((y * f.width + x) * 4) as usize;
                f.data[i..i + 3].copy_from_slice(&[v, 255 - v, v / 2]);
            };
            let mut steps: Vec<(OwnedFrame, EncodeRequest)> = Vec::new();
            steps.push((frame.clone(), request(false, false)));
            for (k, (x, y)) in [(5, 15), (40, 16), (90, 79), (0, 0), (50, 31), (7, 47)]
                .into_iter()
                .enumerate()
            {
                dot(&mut frame, x, y, 40 * k as u8);
                dot(&mut frame, x + 1, y.saturating_sub(17), 90);
                steps.push((frame.clone(), request(false, false)));
            }
            steps.push((frame.clone(), request(false, false)));
            steps.push((frame.clone(), request(true, false)));
            dot(&mut frame, 60, 62, 3);
            steps.push((frame.clone(), request(false, false)));
            steps.push((frame.clone(), request(true, true)));
            dot(&mut frame, 61, 20, 200);
            steps.push((frame.clone(), request(false, false)));
            // Every row changes (converted whole for a while), then small changes again.
            let mut moved = picture(w, h, 1);
            for k in 0..12u32 {
                dot(&mut moved, 3 * k, 70 - 5 * k, 10 * k as u8);
                steps.push((moved.clone(), request(false, false)));
            }
            frame = moved;
            // A new size: new planes, every row converted again.
            let mut small = picture(w, h - 16, 2);
            steps.push((small.clone(), request(false, false)));
            dot(&mut small, 30, 33, 77);
            steps.push((small.clone(), request(false, false)));
            steps.push((frame.clone(), request(false, false)));
            let mut sizes = Vec::new();
            for (k, (f, req)) in steps.iter().enumerate() {
                let (a, _) = run(&mut partial, f, *req, k as u64);
                let (b, _) = run(&mut whole, f, *req, k as u64);
                assert_eq!(a, b, "fullcolor {fullcolor}, picture {k}");
                let (pa, pb) = (partial.planes.planes(), whole.planes.planes());
                assert!(pa.y == pb.y && pa.u == pb.u && pa.v == pb.v, "picture {k}");
                sizes.push(a.len());
            }
            // A test that can fail: the small changes were P pictures, far smaller than the
            // first IDR (so mb_info and the skipped rows were in play).
            assert!(sizes[2] * 4 < sizes[0], "{sizes:?}");
        }
    }

    /// Lines of 13 rows of dark "glyphs" on white, as a terminal shows text: row `y` of a
    /// tall page, each line's glyphs drawn from its number.
    fn text_page_row(y: u32, w: u32, row: &mut [u8]) {
        let (line, r) = (y / 13, y % 13);
        for x in 0..w {
            let glyph = x / 8;
            let bits = (line.wrapping_mul(2_654_435_761) ^ glyph.wrapping_mul(40_503)) >> 7;
            let ink = (2..11).contains(&r) && (bits >> ((x % 8) + (r % 4) * 2)) & 1 == 1;
            let v = if ink || bits % 7 == 0 && r > 9 {
                25
            } else {
                235
            };
            row[(x * 4) as usize..(x * 4 + 4) as usize].copy_from_slice(&[v, v, v, 0]);
        }
    }

    /// `w` x `h` of [`picture`] with a terminal-like page `text_w` wide at its left, scrolled
    /// down by `offset` rows.
    fn text_window(w: u32, h: u32, text_w: u32, offset: u32) -> OwnedFrame {
        let mut f = picture(w, h, 0);
        for y in 0..h {
            let i = (y * w * 4) as usize;
            text_page_row(
                y + offset,
                text_w,
                &mut f.data[i..i + (text_w * 4) as usize],
            );
        }
        f
    }

    /// [`picture`]'s blocks and strokes, panned left by `offset` pixels (a map, a page
    /// dragged sideways).
    fn panned(w: u32, h: u32, offset: u32) -> OwnedFrame {
        let wide = picture(w + offset, h, 0);
        let mut f = OwnedFrame::new(w, h);
        for y in 0..h {
            let from = ((y * (w + offset) + offset) * 4) as usize;
            let to = (y * w * 4) as usize;
            f.data[to..to + (w * 4) as usize]
                .copy_from_slice(&wide.data[from..from + (w * 4) as usize]);
        }
        f
    }

    /// The motion search follows what it saves: a stripe starts on `umh`; a pan (which both
    /// find) moves it to `dia`; after a pause, a terminal window scrolling 1-4 lines a picture
    /// (13-52 rows, which `dia` does not find) moves it back to `umh`, where its pictures are
    /// far smaller; after another pause a pan moves it to `dia` again.
    #[test]
    fn motion_search_follows_what_it_saves() {
        use super::super::x264::MotionSearch;
        let (w, h) = (320u32, 192u32);
        let mut enc = H264Encoder::new(&settings(25, false), w, h).unwrap();
        let mode = |enc: &H264Encoder| {
            let mode = enc.search.as_ref().map(|c| c.mode);
            assert_eq!(mode, Some(enc.encoder.motion_search()), "x264 was told");
            mode
        };
        let mut k = 0u64;
        let mut encode = |enc: &mut H264Encoder, f: &OwnedFrame| {
            k += 1;
            run(enc, f, request(false, false), k).0.len()
        };
        let pan = |enc: &mut H264Encoder,
                   encode: &mut dyn FnMut(&mut H264Encoder, &OwnedFrame) -> usize,
                   n: u32| {
            for i in 0..n {
                encode(enc, &panned(w, h, 2 * i));
            }
        };
        encode(&mut enc, &panned(w, h, 0));
        assert_eq!(
            mode(&enc),
            Some(MotionSearch::Umh),
            "a new encoder starts on umh"
        );
        pan(&mut enc, &mut encode, 40);
        assert_eq!(mode(&enc), Some(MotionSearch::Dia), "a pan: dia");
        // A pause (the same picture again), then the terminal. Lines printed vary, as a
        // terminal's do: x264 also tries the last picture's vectors, so a scroll by the same
        // amount every picture is found by `dia` too. The terminal is a window 128 pixels
        // wide, the rest of the stripe still (less than half of the picture changes: its
        // unchanged macroblocks go to x264 as such).
        let mut offset = 0;
        let window = |offset| text_window(w, h, 128, offset);
        encode(&mut enc, &window(0));
        encode(&mut enc, &window(0));
        let sizes: Vec<usize> = (0..60)
            .map(|i| {
                offset += 13 * [3, 4, 2, 4, 1, 3, 2][i % 7];
                encode(&mut enc, &window(offset))
            })
            .collect();
        assert_eq!(
            mode(&enc),
            Some(MotionSearch::Umh),
            "a scroll of lines: umh"
        );
        let (on_dia, on_umh) = (
            sizes[0..4].iter().sum::<usize>(),
            sizes[50..54].iter().sum::<usize>(),
        );
        assert!(
            on_umh * 2 < on_dia,
            "dia {on_dia} B, umh {on_umh} B (4 pictures): {sizes:?}"
        );
        // Another pause, and a longer pan: `umh`'s probes of `dia` are further apart now.
        encode(&mut enc, &window(offset));
        encode(&mut enc, &window(offset));
        pan(&mut enc, &mut encode, 150);
        assert_eq!(mode(&enc), Some(MotionSearch::Dia), "a pan again: dia");
    }

    /// The choice's rules on sizes alone: two winning probes switch, one does not; `dia`
    /// worse than its probes said goes back to `umh` and is tried again twice as late; a
    /// still picture forgets the sizes.
    #[test]
    fn search_choice_rules() {
        use super::super::x264::MotionSearch::{Dia, Umh};
        // One moving picture, sized by the search it gets; returns that search.
        let step = |c: &mut SearchChoice, umh: usize, dia: usize| {
            let search = c.for_picture(Some(true));
            c.encoded(Some(true), if search == Umh { umh } else { dia });
            search
        };
        let mut c = SearchChoice::new();
        let seen: Vec<_> = (0..6).map(|_| step(&mut c, 1000, 990)).collect();
        assert_eq!(
            seen,
            [Umh, Umh, Umh, Umh, Dia, Dia],
            "4 pictures, then two probes"
        );
        assert_eq!(c.mode, Dia, "both probes won");
        // On dia, pictures at 1.5x umh's: back to umh after RECENT of them.
        let seen: Vec<_> = (0..RECENT).map(|_| step(&mut c, 1000, 1500)).collect();
        assert!(seen.iter().all(|&s| s == Dia), "{seen:?}");
        assert_eq!(c.mode, Umh, "dia regretted");
        assert_eq!(c.umh_gap, 2 * PROBE_BASE, "and tried twice as late");
        let seen: Vec<_> = (0..=2 * PROBE_BASE)
            .map(|_| step(&mut c, 1000, 1600))
            .collect();
        assert_eq!(
            seen.last(),
            Some(&Dia),
            "the probe after the longer gap: {seen:?}"
        );
        assert_eq!(seen.iter().filter(|&&s| s == Dia).count(), 1);
        // That probe lost by far: the gap doubles again. One winning probe, then a losing
        // one: no switch.
        assert_eq!(c.umh_gap, 4 * PROBE_BASE);
        let seen: Vec<_> = (0..=4 * PROBE_BASE)
            .map(|_| step(&mut c, 1000, 1000))
            .collect();
        assert_eq!(seen.last(), Some(&Dia));
        assert_eq!(step(&mut c, 1000, 1200), Dia, "the confirming probe");
        assert_eq!(c.mode, Umh, "one win is not enough");
        // A still picture forgets the sizes: no probe before PROBE_BASE new ones.
        c.encoded(Some(false), 0);
        assert_eq!(c.for_picture(Some(true)), Umh);
        assert_eq!(
            c.for_picture(Some(false)),
            Umh,
            "a still picture is never a probe"
        );
        // On dia, umh is tried PROBE_BASE pictures into a motion and wins on a third of the
        // bytes.
        let mut c = SearchChoice::new();
        c.mode = Dia;
        c.restart();
        let seen: Vec<_> = (0..PROBE_BASE + 2)
            .map(|_| step(&mut c, 300, 1000))
            .collect();
        assert_eq!(seen[PROBE_BASE as usize..], [Umh, Umh]);
        assert_eq!(c.mode, Umh);
    }

    /// x264 is told the unchanged macroblocks only while at most half of them changed.
    #[test]
    fn mb_info_is_left_out_when_most_macroblocks_changed() {
        let c = super::super::x264::MBINFO_CONSTANT;
        assert!(!mostly_changed(&[c, c, 0, 0]), "half changed");
        assert!(mostly_changed(&[c, 0, 0, 0]));
        assert!(!mostly_changed(&[c; 6]));
        assert!(mostly_changed(&[0; 6]));
    }

    /// After a picture where most macroblocks changed, the next
    /// [`MB_INFO_PAUSE_AFTER_MOTION`] pictures are encoded without comparing; the comparison
    /// then starts over, and small changes keep it going.
    #[test]
    fn mb_info_pauses_after_motion_and_resumes() {
        let (w, h) = (96u32, 64u32);
        let mut enc = H264Encoder::new(&settings(25, false), w, h).unwrap();
        let mut k = 0;
        let mut step = |enc: &mut H264Encoder, f: &OwnedFrame| {
            run(enc, f, request(false, false), k);
            k += 1;
            enc.mb_info_paused
        };
        let still = picture(w, h, 0);
        assert_eq!(step(&mut enc, &still), 0, "first picture");
        assert_eq!(step(&mut enc, &still), 0, "nothing changed");
        assert_eq!(
            step(&mut enc, &picture(w, h, 1)),
            MB_INFO_PAUSE_AFTER_MOTION
        );
        for left in (0..MB_INFO_PAUSE_AFTER_MOTION).rev() {
            assert_eq!(step(&mut enc, &picture(w, h, 2 + left)), left, "paused");
        }
        // Compared again: a small change keeps it going.
        let mut dotted = picture(w, h, 2);
        assert_eq!(step(&mut enc, &dotted), 0);
        dotted.data[4 * (10 * w as usize + 10)] ^= 0xff;
        assert_eq!(step(&mut enc, &dotted), 0);
        assert_eq!(
            step(&mut enc, &picture(w, h, 3)),
            MB_INFO_PAUSE_AFTER_MOTION
        );
    }

    /// What telling x264 the unchanged macroblocks (`mb_info`) costs and saves, per stripe
    /// height, on small changes (a caret typing 3 glyphs a frame), a third of the width
    /// changing (video) and every row changing (a 4-row scroll). Two encoders per case, with
    /// and without, fed the same frames alternately; wall time per picture (p10 / median,
    /// colour conversion and the comparison included) and bytes. A third encoder tells x264
    /// too but converts and compares every row (the encoders convert only the rows that
    /// changed, [`YuvPlanes::convert_changed`]). Figures in docs/h264.md:
    /// `cargo test --release -p pixelflux --lib -- --ignored --nocapture bench_mb_info`
    #[test]
    #[ignore = "benchmark: run in release with --ignored --nocapture"]
    fn bench_mb_info() {
        use std::time::Instant;
        let w = 1920u32;
        let quantile = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[((v.len() - 1) as f64 * q) as usize]
        };
        println!("| change | stripe rows | mb_info | µs/picture p10 | median | bytes/picture |");
        println!("|---|---|---|---|---|---|");
        for (name, rows) in [
            ("typing", 128u32),
            ("typing", 544),
            ("video", 128),
            ("video", 544),
            ("scroll", 128),
            ("scroll", 544),
        ] {
            let base = picture(w, rows + 480, 1);
            let frames: Vec<OwnedFrame> = (0..120u32)
                .map(|k| {
                    let mut f = OwnedFrame::new(w, rows);
                    let shift = if name == "scroll" { 4 * k } else { 0 };
                    let stride = w as usize * 4;
                    f.data.copy_from_slice(
                        &base.data[shift as usize * stride..(shift + rows) as usize * stride],
                    );
                    if name == "typing" {
                        // Every glyph typed so far, 6x13 each, on one line.
                        for g in 0..=(3 * k) {
                            let (x0, y0) = (40 + (g % 300) * 6, 40 + (g / 300) * 13);
                            for y in y0..y0 + 10 {
                                for x in x0..x0 + 5 {
                                    if (x * 7 + y * 3 + g) % 3 == 0 {
                                        let i = ((y * w + x) * 4) as usize;
                                        f.data[i..i + 3].fill(0);
                                    }
                                }
                            }
                        }
                    } else if name == "video" {
                        for y in 0..rows {
                            for x in w / 3..2 * w / 3 {
                                let i = ((y * w + x) * 4) as usize;
                                let v = ((x + 3 * k) ^ (y + 2 * k)) as u8;
                                f.data[i..i + 3].copy_from_slice(&[v, v / 2, 255 - v]);
                            }
                        }
                    }
                    f
                })
                .collect();
            let mut with = H264Encoder::new(&settings(25, false), w, rows).unwrap();
            let mut without = H264Encoder::new(&settings(25, false), w, rows).unwrap();
            without.constant = None;
            let mut whole = H264Encoder::new(&settings(25, false), w, rows).unwrap();
            whole.changed_rows_only = false;
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            let mut bytes = [0usize; 3];
            for (k, f) in frames.iter().enumerate() {
                let mut order: Vec<(usize, &mut H264Encoder)> =
                    [&mut with, &mut without, &mut whole]
                        .into_iter()
                        .enumerate()
                        .collect();
                // Each encoder goes first as often as last (the frame is in the cache after
                // the first).
                if k % 2 == 1 {
                    order.reverse();
                }
                for (j, enc) in order {
                    let t = Instant::now();
                    let (out, _) = run(enc, f, request(false, false), k as u64);
                    if k > 0 {
                        times[j].push(t.elapsed().as_secs_f64() * 1e6);
                        bytes[j] += out.len();
                    }
                }
            }
            for (j, label) in ["yes", "no", "yes, every row converted"].iter().enumerate() {
                let n = times[j].len();
                println!(
                    "| {name} | {rows} | {label} | {:.0} | {:.0} | {} |",
                    quantile(&mut times[j], 0.1),
                    quantile(&mut times[j], 0.5),
                    bytes[j] / n
                );
            }
        }
    }

    /// x264's share of the instructions per picture under its settings, for
    /// `valgrind --tool=callgrind` (instruction counts are deterministic where wall time on a
    /// shared machine is not): the synthetic scene `PIXELFLUX_CG_SCENE` (scroll, full, video,
    /// typing) at 1920x1080 in the 2-core default layout (544 + 536 rows),
    /// `PIXELFLUX_CG_FRAMES` pictures, x264 set as `PIXELFLUX_CG_SEARCH` says: `screen` (ours:
    /// the search chosen per picture, [`SearchChoice`], and mb_info), `umh-mbinfo` (umh, range
    /// 64, on every picture: ours before that choice), `umh` (the same without mb_info), `dia`
    /// (ultrafast's diamond, range 16, upstream's) or `dia-mbinfo`. Prints the bytes after the
    /// first picture. Run by
    /// `scripts/callgrind-x264.sh`; figures in docs/PERFORMANCE.md.
    #[test]
    #[ignore = "measurement: run under callgrind (scripts/callgrind-x264.sh)"]
    fn callgrind_x264_settings() {
        use super::super::x264::TestSearch;
        use crate::source::synthetic::SyntheticSource;
        let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let scene: crate::Scene = env("PIXELFLUX_CG_SCENE", "scroll").parse().unwrap();
        let frames: u64 = env("PIXELFLUX_CG_FRAMES", "10").parse().unwrap();
        let search = env("PIXELFLUX_CG_SEARCH", "screen");
        let (umh, dia) = (x264::TEST_ME_UMH, x264::TEST_ME_DIA);
        let test_search = match search.as_str() {
            "screen" => None,
            "umh" => Some(TestSearch {
                method: umh,
                range: x264::MOTION_RANGE,
                mb_info: false,
            }),
            "dia" => Some(TestSearch {
                method: dia,
                range: 16,
                mb_info: false,
            }),
            "dia-mbinfo" => Some(TestSearch {
                method: dia,
                range: 16,
                mb_info: true,
            }),
            // Before the per-picture choice: umh on every picture.
            "umh-mbinfo" => Some(TestSearch {
                method: umh,
                range: x264::MOTION_RANGE,
                mb_info: true,
            }),
            other => panic!("PIXELFLUX_CG_SEARCH {other}"),
        };
        x264::TEST_SEARCH.with(|s| s.set(test_search));
        let (w, h) = (1920u32, 1080u32);
        let layout = [(0u32, 544u32), (544, 536)];
        let mut encoders: Vec<H264Encoder> = layout
            .iter()
            .map(|&(_, rows)| {
                let mut e = H264Encoder::new(&settings(25, false), w, rows).unwrap();
                if test_search.is_some_and(|t| !t.mb_info) {
                    e.constant = None;
                }
                e
            })
            .collect();
        let mut source = SyntheticSource::new(scene, w, h);
        let mut bytes = 0;
        for k in 0..frames {
            let frame = source.advance().clone();
            for (enc, &(y, rows)) in encoders.iter_mut().zip(&layout) {
                let mut out = Vec::new();
                let produced = enc
                    .encode(
                        frame.view().rows(y, rows),
                        &request(false, false),
                        StripePlace { frame_id: k, y },
                        &mut out,
                    )
                    .unwrap();
                if k > 0 && produced.is_some() {
                    bytes += out.len();
                }
            }
        }
        x264::TEST_SEARCH.with(|s| s.set(None));
        println!("{scene} {search} frames {frames} bytes after the first {bytes}");
        assert!(
            frames < 2 || bytes > 0,
            "{scene} changes every picture: P pictures expected"
        );
    }
}
