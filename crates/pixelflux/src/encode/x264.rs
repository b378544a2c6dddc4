//! A small safe wrapper around libx264 (through `x264-sys`): open an encoder with the few
//! knobs pixelflux needs, change its CRF, encode one planar picture into Annex-B bytes.
//!
//! All of pixelflux's `unsafe` for H.264 lives here. The encoder is configured for screen
//! streaming: preset `ultrafast`, tune `zerolatency` (no lookahead, no frame threads, so every
//! `encode` call returns the whole access unit of the picture it was given), with a motion
//! search that finds scrolled text (`umh`, range 64) and per-picture hints of the unchanged
//! macroblocks (`mb_info`; see `screen_motion_search`), no B-frames, an
//! infinite GOP without scene cuts (key frames only when asked for), CRF rate control, Annex-B
//! output with SPS/PPS repeated in front of every IDR, no access unit delimiters, BT.709
//! limited-range colour description in the VUI.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use x264_sys as sys;

/// Chroma layout of the pictures fed to the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0 (chroma planes at half width and height), encoded with the baseline profile.
    I420,
    /// 4:4:4 (full-resolution chroma), encoded with the High 4:4:4 Predictive profile.
    I444,
}

impl Chroma {
    fn csp(self) -> c_int {
        match self {
            Chroma::I420 => sys::X264_CSP_I420 as c_int,
            Chroma::I444 => sys::X264_CSP_I444 as c_int,
        }
    }

    fn profile(self) -> &'static CStr {
        match self {
            Chroma::I420 => c"baseline",
            Chroma::I444 => c"high444",
        }
    }

    /// Width and height of a chroma plane for a picture of `width` x `height`.
    pub fn plane_size(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            Chroma::I420 => (width.div_ceil(2), height.div_ceil(2)),
            Chroma::I444 => (width, height),
        }
    }
}

/// How to open an encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Picture width in pixels (even for 4:2:0).
    pub width: u32,
    /// Picture height in rows (even for 4:2:0).
    pub height: u32,
    /// Chroma layout, which also picks the profile.
    pub chroma: Chroma,
    /// Constant rate factor, 0–51 (lower is better).
    pub crf: f32,
    /// Encoder threads; 0 lets x264 choose (about one per core).
    pub threads: u32,
    /// Frame rate written into the stream's timing information (and, under [`Cbr`], what
    /// x264 divides the bitrate by to get a frame's budget).
    pub fps: f64,
    /// Constant bitrate instead of CRF (`crf` is then not used).
    pub cbr: Option<Cbr>,
    /// Lowest quantizer (0: x264's default, 0).
    pub qp_min: u8,
    /// Highest quantizer (0: x264's default).
    pub qp_max: u8,
}

/// A constant bitrate: x264's ABR rate control with a VBV whose maximum rate is the target,
/// so no second of frames goes far above it and none far below it while there is detail to
/// spend the bits on. Changeable on an open encoder ([`Encoder::set_cbr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cbr {
    /// Target (and VBV maximum) rate in kbit/s, at least 1.
    pub kbps: u32,
    /// VBV buffer in kbit, at least 1.
    pub vbv_kbit: u32,
}

/// What kind of picture x264 produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureType {
    /// An IDR picture (decodable on its own, SPS/PPS in front).
    Idr,
    /// A non-IDR intra picture.
    I,
    /// A predicted picture.
    P,
    /// Anything else (B-frames are switched off, so not expected).
    Other,
}

/// libx264 refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum X264Error {
    /// The parameters were rejected by x264 (the message is x264's own when it gave one).
    #[error("x264 rejected the parameters: {0}")]
    Params(String),
    /// `x264_encoder_open` failed.
    #[error("cannot open x264 encoder for {width}x{height}: {reason}")]
    Open {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// x264's last error message, if any.
        reason: String,
    },
    /// `x264_encoder_encode` returned an error.
    #[error("x264 failed to encode a picture: {0}")]
    Encode(String),
    /// The planes handed in do not fit the encoder's picture size.
    #[error("picture planes do not match the encoder: {0}")]
    Planes(String),
}

/// One picture's planes (Y, U, V), each `stride` bytes per row.
#[derive(Debug, Clone, Copy)]
pub struct Planes<'a> {
    /// Luma, `height` rows of `y_stride` bytes.
    pub y: &'a [u8],
    /// Cb plane.
    pub u: &'a [u8],
    /// Cr plane.
    pub v: &'a [u8],
    /// Bytes per luma row.
    pub y_stride: usize,
    /// Bytes per chroma row (both chroma planes).
    pub c_stride: usize,
}

/// Where x264's log lines go: `tracing`, and the last error kept for the next error we return.
/// Boxed so its address stays fixed while x264 holds a pointer to it.
#[derive(Default)]
struct LogSink {
    last_error: Mutex<Option<String>>,
}

impl LogSink {
    fn take(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn reason(&self, fallback: &str) -> String {
        self.take().unwrap_or_else(|| fallback.to_string())
    }
}

/// An open x264 encoder. Frees itself on drop.
pub struct Encoder {
    raw: NonNull<sys::x264_t>,
    /// Keeps the address x264's log callback writes through alive until the encoder is closed.
    log: Box<LogSink>,
    config: Config,
    pts: i64,
    /// `6·log2(ip_factor)`: how many quantizer steps finer x264 makes an I picture than the
    /// P pictures around it (x264's `ip_offset`, about 2.9 with the default factor 1.4).
    ip_offset: f32,
    /// The quantizer of the last picture produced, as x264 reported it.
    last_qp: Option<u8>,
    /// The motion search the next picture is analysed with.
    search: MotionSearch,
}

// SAFETY: an x264_t is not tied to the thread that opened it; x264's documentation only
// forbids using one encoder from two threads at once, which `&mut self` on every call rules
// out. The log sink it points at is itself Sync (a Mutex).
unsafe impl Send for Encoder {}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("x264::Encoder")
            .field("config", &self.config)
            .finish()
    }
}

impl Encoder {
    /// Opens an encoder. Fails with x264's reason (bad size for the chroma layout, bad profile).
    pub fn open(config: Config) -> Result<Self, X264Error> {
        let log = Box::<LogSink>::default();
        let too_big = |v: u32| v == 0 || v > c_int::MAX as u32;
        if too_big(config.width) || too_big(config.height) {
            return Err(X264Error::Params(format!(
                "picture size {}x{} is not usable",
                config.width, config.height
            )));
        }
        if !(0.0..=51.0).contains(&config.crf) {
            return Err(X264Error::Params(format!(
                "CRF {} is outside 0..=51",
                config.crf
            )));
        }
        // SAFETY: x264_param_t is plain old data (integers, floats, raw pointers, function
        // pointer options), for which all-zero bytes are a valid value; the next call fills it.
        let mut param: Box<sys::x264_param_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `param` points to a valid x264_param_t; the preset and tune names are
        // NUL-terminated static strings.
        let rc = unsafe {
            sys::x264_param_default_preset(
                &mut *param,
                c"ultrafast".as_ptr(),
                c"zerolatency".as_ptr(),
            )
        };
        if rc < 0 {
            return Err(X264Error::Params("preset ultrafast/zerolatency".into()));
        }
        install_log(&mut param, &log);
        param.i_width = config.width as c_int;
        param.i_height = config.height as c_int;
        param.i_csp = config.chroma.csp();
        param.i_bitdepth = 8;
        param.i_threads = config.threads as c_int;
        param.i_bframe = 0;
        param.i_keyint_max = sys::X264_KEYINT_MAX_INFINITE as c_int;
        param.i_scenecut_threshold = 0;
        param.b_annexb = 1;
        param.b_repeat_headers = 1;
        param.b_aud = 0;
        let fps = if config.fps.is_finite() && config.fps > 0.0 {
            config.fps
        } else {
            60.0
        };
        param.i_fps_num = (fps * 1000.0).round().max(1.0) as u32;
        param.i_fps_den = 1000;
        param.b_vfr_input = 0;
        match config.cbr {
            None => {
                param.rc.i_rc_method = sys::X264_RC_CRF as c_int;
                param.rc.f_rf_constant = config.crf;
            }
            Some(cbr) => {
                param.rc.i_rc_method = sys::X264_RC_ABR as c_int;
                set_cbr_params(&mut param, cbr);
            }
        }
        if config.qp_min > 0 {
            param.rc.i_qp_min = c_int::from(config.qp_min.min(51));
        }
        if config.qp_max > 0 {
            param.rc.i_qp_max = c_int::from(config.qp_max.min(51));
        }
        // BT.709, limited range: what the colour conversion produces.
        param.vui.b_fullrange = 0;
        param.vui.i_colorprim = 1;
        param.vui.i_transfer = 1;
        param.vui.i_colmatrix = 1;
        screen_motion_search(&mut param);
        let ip_offset = 6.0 * param.rc.f_ip_factor.max(f32::MIN_POSITIVE).log2();
        // SAFETY: `param` is valid and the profile name is a NUL-terminated static string.
        let rc =
            unsafe { sys::x264_param_apply_profile(&mut *param, config.chroma.profile().as_ptr()) };
        if rc < 0 {
            return Err(X264Error::Params(log.reason("profile not applicable")));
        }
        // SAFETY: `param` is fully initialised; x264 copies it (including the log pointers,
        // which stay valid because `log` is boxed and outlives the encoder).
        let raw = unsafe { sys::x264_encoder_open(&mut *param) };
        let Some(raw) = NonNull::new(raw) else {
            return Err(X264Error::Open {
                width: config.width,
                height: config.height,
                reason: log.reason("x264_encoder_open returned NULL"),
            });
        };
        Ok(Self {
            raw,
            log,
            config,
            pts: 0,
            ip_offset,
            last_qp: None,
            search: MotionSearch::Umh,
        })
    }

    /// The motion search the next picture is analysed with ([`MotionSearch::Umh`] when opened;
    /// for tests).
    #[cfg(test)]
    pub fn motion_search(&self) -> MotionSearch {
        self.search
    }

    /// Analyses the pictures from the next one on with `search`, through
    /// `x264_encoder_reconfig` (the stream goes on; x264 copies `analyse.i_me_method` and
    /// `analyse.i_me_range` on a reconfig).
    pub fn set_motion_search(&mut self, search: MotionSearch) -> Result<(), X264Error> {
        if search == self.search {
            return Ok(());
        }
        // SAFETY: as in `open`, all-zero bytes are a valid x264_param_t; the next call
        // overwrites it with the encoder's current parameters.
        let mut param: Box<sys::x264_param_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` is open and used by this thread only (&mut self); `param` is a valid,
        // writable x264_param_t.
        unsafe { sys::x264_encoder_parameters(self.raw.as_ptr(), &mut *param) };
        search.apply(&mut param);
        // SAFETY: `raw` is open; x264 copies what it takes from `param` (whose log pointers are
        // still the boxed sink's, valid while the encoder is open).
        let rc = unsafe { sys::x264_encoder_reconfig(self.raw.as_ptr(), &mut *param) };
        if rc < 0 {
            return Err(X264Error::Params(self.log.reason(&format!(
                "x264_encoder_reconfig refused the {search:?} motion search"
            ))));
        }
        self.search = search;
        Ok(())
    }

    /// A new constant bitrate for the pictures from the next one on, through
    /// `x264_encoder_reconfig` (no IDR, the stream goes on). Only for an encoder opened with
    /// [`Config::cbr`] (x264 cannot switch its VBV on later).
    pub fn set_cbr(&mut self, cbr: Cbr) -> Result<(), X264Error> {
        if self.config.cbr.is_none() {
            return Err(X264Error::Params(
                "a constant bitrate needs an encoder opened with one".into(),
            ));
        }
        if self.config.cbr == Some(cbr) {
            return Ok(());
        }
        // SAFETY: as in `open`, all-zero bytes are a valid x264_param_t; the next call
        // overwrites it with the encoder's current parameters.
        let mut param: Box<sys::x264_param_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` is open and used by this thread only (&mut self); `param` is a valid,
        // writable x264_param_t.
        unsafe { sys::x264_encoder_parameters(self.raw.as_ptr(), &mut *param) };
        set_cbr_params(&mut param, cbr);
        // SAFETY: `raw` is open; x264 copies what it takes from `param` (whose log pointers are
        // still the boxed sink's, valid while the encoder is open).
        let rc = unsafe { sys::x264_encoder_reconfig(self.raw.as_ptr(), &mut *param) };
        if rc < 0 {
            return Err(X264Error::Params(self.log.reason(&format!(
                "x264_encoder_reconfig refused {} kbit/s",
                cbr.kbps
            ))));
        }
        self.config.cbr = Some(cbr);
        Ok(())
    }

    /// The quantizer x264's CRF rate control gives the very first picture of a stream, an IDR:
    /// `CRF - 6·log2(ip_factor)` rounded (CRF 25: 22). x264 fixes that picture's quantizer
    /// from the CRF alone; a later I picture gets its quantizer from the running average of
    /// the P pictures before it or, when no P picture came between, from its own complexity
    /// (see `docs/h264.md`), which is why [`crate::encode::h264`] forces this value on key
    /// frames it asks for.
    pub fn first_picture_qp(&self) -> u8 {
        (self.config.crf - self.ip_offset).round().clamp(0.0, 51.0) as u8
    }

    /// The quantizer of the last picture [`encode`](Self::encode) produced (x264's frame QP),
    /// `None` before the first.
    #[cfg(test)]
    pub fn last_qp(&self) -> Option<u8> {
        self.last_qp
    }

    /// Encodes one picture and appends its access unit (Annex-B NAL units) to `out`.
    /// `force_idr` makes it an IDR with SPS/PPS in front. Returns the picture type x264
    /// produced, or `None` when it produced no bytes.
    #[cfg(test)]
    pub fn encode(
        &mut self,
        planes: Planes<'_>,
        force_idr: bool,
        out: &mut Vec<u8>,
    ) -> Result<Option<PictureType>, X264Error> {
        self.encode_at(planes, force_idr, None, out)
    }

    /// Like [`encode`](Self::encode); `qp` forces this one picture's quantizer (0–51)
    /// instead of leaving it to rate control.
    #[cfg(test)]
    pub fn encode_at(
        &mut self,
        planes: Planes<'_>,
        force_idr: bool,
        qp: Option<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Option<PictureType>, X264Error> {
        self.encode_with(planes, force_idr, qp, None, out)
    }

    /// Like [`encode_at`](Self::encode_at), with `mb_info`: one byte per macroblock (the
    /// size rounded up to 16, row by row), [`MBINFO_CONSTANT`] where the picture is the same
    /// as the one this encoder was handed before (see [`super::mbinfo`]).
    pub fn encode_with(
        &mut self,
        planes: Planes<'_>,
        force_idr: bool,
        qp: Option<u8>,
        mb_info: Option<&mut [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<Option<PictureType>, X264Error> {
        self.check_planes(&planes)?;
        let macroblocks =
            self.config.width.div_ceil(16) as usize * self.config.height.div_ceil(16) as usize;
        if mb_info.as_ref().is_some_and(|m| m.len() != macroblocks) {
            return Err(X264Error::Planes(format!(
                "mb_info needs {macroblocks} entries for {}x{}",
                self.config.width, self.config.height
            )));
        }
        // SAFETY: x264_picture_t is plain old data; x264_picture_init then sets every field
        // to its default.
        let mut pic_in: sys::x264_picture_t = unsafe { std::mem::zeroed() };
        // SAFETY: `pic_in` is a valid, writable x264_picture_t.
        unsafe { sys::x264_picture_init(&mut pic_in) };
        // SAFETY: as above, a plain-old-data output slot that x264 fills.
        let mut pic_out: sys::x264_picture_t = unsafe { std::mem::zeroed() };
        pic_in.img.i_csp = self.config.chroma.csp();
        pic_in.img.i_plane = 3;
        pic_in.img.i_stride = [
            planes.y_stride as c_int,
            planes.c_stride as c_int,
            planes.c_stride as c_int,
            0,
        ];
        // x264 only reads the input planes (it copies them into its own frame), so handing
        // it pointers derived from shared slices is sound.
        pic_in.img.plane = [
            planes.y.as_ptr().cast_mut(),
            planes.u.as_ptr().cast_mut(),
            planes.v.as_ptr().cast_mut(),
            ptr::null_mut(),
        ];
        pic_in.i_type = if force_idr {
            sys::X264_TYPE_IDR as c_int
        } else {
            sys::X264_TYPE_AUTO as c_int
        };
        if let Some(qp) = qp {
            pic_in.i_qpplus1 = c_int::from(qp.min(51)) + 1;
        }
        // x264 reads the flags while it encodes this picture (no lookahead, no frame
        // threads: before the call returns) and does not free them (no mb_info_free); the
        // length was checked above. With b_mb_info_update off it never writes them.
        if let Some(flags) = mb_info {
            pic_in.prop.mb_info = flags.as_mut_ptr();
        }
        pic_in.i_pts = self.pts;
        self.pts += 1;
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut nal_count: c_int = 0;
        // SAFETY: `raw` is open and used by this thread only (&mut self); the planes were
        // checked above to hold `height` rows of their strides for this picture size, and
        // they outlive the call; the out-pointers are valid locals.
        let size = unsafe {
            sys::x264_encoder_encode(
                self.raw.as_ptr(),
                &mut nals,
                &mut nal_count,
                &mut pic_in,
                &mut pic_out,
            )
        };
        if size < 0 {
            return Err(X264Error::Encode(
                self.log
                    .reason(&format!("x264_encoder_encode returned {size}")),
            ));
        }
        if size == 0 || nals.is_null() || nal_count <= 0 {
            return Ok(None);
        }
        // SAFETY: on success x264 points `nals` at `nal_count` NAL descriptors, valid until
        // the next call on this encoder.
        let nals = unsafe { std::slice::from_raw_parts(nals, nal_count as usize) };
        out.reserve(size as usize);
        for nal in nals {
            if nal.p_payload.is_null() || nal.i_payload <= 0 {
                continue;
            }
            // SAFETY: each NAL's payload is `i_payload` bytes at `p_payload` (with its Annex-B
            // start code, as b_annexb is set), valid until the next call on this encoder.
            let bytes =
                unsafe { std::slice::from_raw_parts(nal.p_payload, nal.i_payload as usize) };
            out.extend_from_slice(bytes);
        }
        self.last_qp = u8::try_from(pic_out.i_qpplus1 - 1).ok();
        let kind = match pic_out.i_type as u32 {
            sys::X264_TYPE_IDR => PictureType::Idr,
            sys::X264_TYPE_I => PictureType::I,
            sys::X264_TYPE_P => PictureType::P,
            _ => PictureType::Other,
        };
        Ok(Some(kind))
    }

    fn check_planes(&self, p: &Planes<'_>) -> Result<(), X264Error> {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        let (cw, ch) = self
            .config
            .chroma
            .plane_size(self.config.width, self.config.height);
        let (cw, ch) = (cw as usize, ch as usize);
        let fits = |len: usize, stride: usize, width: usize, rows: usize| {
            stride >= width && stride <= c_int::MAX as usize && len >= stride * (rows - 1) + width
        };
        if !fits(p.y.len(), p.y_stride, w, h)
            || !fits(p.u.len(), p.c_stride, cw, ch)
            || !fits(p.v.len(), p.c_stride, cw, ch)
        {
            return Err(X264Error::Planes(format!(
                "{w}x{h} {:?} needs luma stride >= {w} and chroma {cw}x{ch}; got strides {}/{} \
                 and {}/{}/{} bytes",
                self.config.chroma,
                p.y_stride,
                p.c_stride,
                p.y.len(),
                p.u.len(),
                p.v.len()
            )));
        }
        Ok(())
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from x264_encoder_open and is closed exactly once, here; the log
        // sink is dropped after this (fields drop after `drop` returns).
        unsafe { sys::x264_encoder_close(self.raw.as_ptr()) };
    }
}

/// `X264_MBINFO_CONSTANT`: the macroblock is the same as in the previous picture.
pub const MBINFO_CONSTANT: u8 = sys::X264_MBINFO_CONSTANT as u8;

/// Motion search radius in pixels (x264's `merange`): a terminal printing 4 lines of 13 rows
/// a frame moves its text 52 rows, and a page scrolled by the wheel about as much.
pub const MOTION_RANGE: c_int = 64;

/// x264's motion search (`analyse.i_me_method`, `analyse.i_me_range`), changeable on an open
/// encoder ([`Encoder::set_motion_search`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotionSearch {
    /// The uneven multi-hexagon search with a [`MOTION_RANGE`] range: finds whole-line
    /// scrolls, which `ultrafast`'s diamond never does (every scrolled macroblock was then
    /// coded anew); measured on an xterm printing a log (docs/h264.md, "Motion search"):
    /// 0.32x the bytes at +1.9 dB.
    Umh,
    /// `ultrafast`'s diamond, range 16: one pixel at a time around the predicted vector.
    /// Finds small moves (a pan, a slow scroll, video) as well as `umh` does, with 8-17%
    /// fewer x264 instructions a picture (docs/PERFORMANCE.md, "x264's settings").
    Dia,
}

impl MotionSearch {
    /// The other one.
    pub fn other(self) -> Self {
        match self {
            Self::Umh => Self::Dia,
            Self::Dia => Self::Umh,
        }
    }

    fn apply(self, param: &mut sys::x264_param_t) {
        let (method, range) = match self {
            Self::Umh => (sys::X264_ME_UMH as c_int, MOTION_RANGE),
            Self::Dia => (sys::X264_ME_DIA as c_int, 16),
        };
        param.analyse.i_me_method = method;
        param.analyse.i_me_range = range;
    }
}

/// Motion search for screen content, on top of `ultrafast`: [`MotionSearch::Umh`] at first
/// (the stripe encoder then picks per picture, see `encode::h264`).
///
/// Also `b_mb_info`: pictures may say which macroblocks did not change
/// ([`Encoder::encode_with`]), which x264 then skips without analysis.
fn screen_motion_search(param: &mut sys::x264_param_t) {
    #[cfg(test)]
    if let Some(search) = TEST_SEARCH.with(std::cell::Cell::get) {
        param.analyse.i_me_method = search.method;
        param.analyse.i_me_range = search.range;
        param.analyse.b_mb_info = c_int::from(search.mb_info);
        param.analyse.b_mb_info_update = 0;
        return;
    }
    MotionSearch::Umh.apply(param);
    param.analyse.b_mb_info = 1;
    param.analyse.b_mb_info_update = 0;
}

/// Whether the motion search is fixed by a test ([`TestSearch`]): the stripe encoder then does
/// not choose one per picture.
pub(crate) fn fixed_search() -> bool {
    #[cfg(test)]
    if TEST_SEARCH.with(std::cell::Cell::get).is_some() {
        return true;
    }
    false
}

/// Test-only replacement for [`screen_motion_search`]'s settings (x264's `i_me_method`,
/// `i_me_range`, `b_mb_info`), for encoders opened on this thread while set: the
/// instruction-count comparison of the settings in `h264.rs` (`callgrind_x264_settings`).
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TestSearch {
    pub method: c_int,
    pub range: c_int,
    pub mb_info: bool,
}

/// x264's uneven multi-hexagon motion search (test-only name, for [`TestSearch`]).
#[cfg(test)]
pub(crate) const TEST_ME_UMH: c_int = sys::X264_ME_UMH as c_int;
/// x264's diamond motion search, `ultrafast`'s (test-only name, for [`TestSearch`]).
#[cfg(test)]
pub(crate) const TEST_ME_DIA: c_int = sys::X264_ME_DIA as c_int;

#[cfg(test)]
thread_local! {
    pub(crate) static TEST_SEARCH: std::cell::Cell<Option<TestSearch>> =
        const { std::cell::Cell::new(None) };
}

/// Bitrate, VBV rate and buffer of a constant bitrate (x264 counts both in kbit).
fn set_cbr_params(param: &mut sys::x264_param_t, cbr: Cbr) {
    let kbps = cbr.kbps.clamp(1, c_int::MAX as u32) as c_int;
    param.rc.i_bitrate = kbps;
    param.rc.i_vbv_max_bitrate = kbps;
    param.rc.i_vbv_buffer_size = cbr.vbv_kbit.clamp(1, c_int::MAX as u32) as c_int;
}

/// Routes x264's log through our callback (x86-64 Linux, where `va_list` is a pointer we can
/// hand to `vsnprintf`); elsewhere x264 is silenced, as the library never prints.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn install_log(param: &mut sys::x264_param_t, sink: &LogSink) {
    param.pf_log = Some(log_callback);
    param.p_log_private = (sink as *const LogSink).cast_mut().cast();
    param.i_log_level = sys::X264_LOG_WARNING as c_int;
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn install_log(param: &mut sys::x264_param_t, _sink: &LogSink) {
    param.i_log_level = sys::X264_LOG_NONE;
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
extern "C" {
    fn vsnprintf(
        buf: *mut c_char,
        size: usize,
        format: *const c_char,
        args: *mut sys::__va_list_tag,
    ) -> c_int;
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe extern "C" fn log_callback(
    private: *mut std::ffi::c_void,
    level: c_int,
    format: *const c_char,
    args: *mut sys::__va_list_tag,
) {
    if format.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 512];
    // SAFETY: x264 passes its format string and the matching va_list; vsnprintf writes at
    // most `buf.len()` bytes including the terminating NUL.
    let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), format, args) };
    if n < 0 {
        return;
    }
    // SAFETY: vsnprintf NUL-terminated the buffer.
    let line = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let line = line.trim_end();
    if level <= sys::X264_LOG_ERROR as c_int {
        tracing::error!(target: "pixelflux::x264", "{line}");
        if !private.is_null() {
            // SAFETY: `private` is the boxed LogSink installed in `install_log`, which lives
            // until after x264_encoder_close.
            let sink = unsafe { &*(private as *const LogSink) };
            *sink.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(line.to_string());
        }
    } else if level == sys::X264_LOG_WARNING as c_int {
        tracing::warn!(target: "pixelflux::x264", "{line}");
    } else {
        tracing::debug!(target: "pixelflux::x264", "{line}");
    }
}

/// NAL types without SEI (x264 puts its version SEI into the first IDR only).
#[cfg(test)]
pub(crate) fn vcl_and_headers(stream: &[u8]) -> Vec<u8> {
    use crate::wire::nal_types;
    nal_types(stream).into_iter().filter(|&t| t != 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::nal_types;

    fn grey(w: usize, h: usize, chroma: Chroma) -> (Vec<u8>, Vec<u8>, usize) {
        let (cw, ch) = chroma.plane_size(w as u32, h as u32);
        (
            vec![128; w * h],
            vec![128; cw as usize * ch as usize],
            cw as usize,
        )
    }

    fn config(chroma: Chroma) -> Config {
        Config {
            width: 64,
            height: 32,
            chroma,
            crf: 25.0,
            threads: 1,
            fps: 30.0,
            cbr: None,
            qp_min: 0,
            qp_max: 0,
        }
    }

    /// The `mb_info` flags reach x264: a changed picture whose macroblocks are all (falsely)
    /// marked constant comes out as a picture of skips, a fraction of the same picture's size
    /// without the flags.
    #[test]
    fn constant_macroblock_flags_reach_x264() {
        let (w, h) = (128usize, 64usize);
        let noisy = |seed: u32| -> Vec<u8> {
            (0..w * h)
                .map(|i| ((i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect()
        };
        let (u, v) = (vec![128u8; w * h / 4], vec![128u8; w * h / 4]);
        fn planes<'a>(y: &'a [u8], u: &'a [u8], v: &'a [u8], w: usize) -> Planes<'a> {
            Planes {
                y,
                u,
                v,
                y_stride: w,
                c_stride: w / 2,
            }
        }
        let (a, b) = (noisy(1), noisy(7));
        let size = Config {
            width: w as u32,
            height: h as u32,
            ..config(Chroma::I420)
        };
        let p_size = |flags: Option<&mut [u8]>| {
            let mut enc = Encoder::open(size).unwrap();
            let mut out = Vec::new();
            enc.encode_with(planes(&a, &u, &v, w), false, None, None, &mut out)
                .unwrap();
            out.clear();
            let kind = enc
                .encode_with(planes(&b, &u, &v, w), false, None, flags, &mut out)
                .unwrap();
            assert_eq!(kind, Some(PictureType::P));
            out.len()
        };
        let mut all = vec![MBINFO_CONSTANT; (w / 16) * (h / 16)];
        let (plain, constant) = (p_size(None), p_size(Some(&mut all)));
        assert!(
            constant * 10 < plain,
            "{constant} B with the flags, {plain} B without"
        );
        // A wrong length is refused before x264 reads past it.
        let mut enc = Encoder::open(size).unwrap();
        let mut short = vec![0u8; 3];
        let err = enc.encode_with(
            planes(&a, &u, &v, w),
            false,
            None,
            Some(&mut short),
            &mut Vec::new(),
        );
        assert!(matches!(err, Err(X264Error::Planes(_))), "{err:?}");
    }

    #[test]
    fn first_picture_is_an_idr_with_headers_then_p_then_forced_idr() {
        for chroma in [Chroma::I420, Chroma::I444] {
            let mut enc = Encoder::open(config(chroma)).unwrap();
            let (y, c, cs) = grey(64, 32, chroma);
            let planes = Planes {
                y: &y,
                u: &c,
                v: &c,
                y_stride: 64,
                c_stride: cs,
            };
            let mut out = Vec::new();
            assert_eq!(
                enc.encode(planes, false, &mut out).unwrap(),
                Some(PictureType::Idr)
            );
            assert_eq!(vcl_and_headers(&out), [7, 8, 5], "SPS, PPS, IDR slice");
            out.clear();
            assert_eq!(
                enc.encode(planes, false, &mut out).unwrap(),
                Some(PictureType::P)
            );
            assert_eq!(
                nal_types(&out),
                [1],
                "one non-IDR slice, no headers, no AUD"
            );
            out.clear();
            assert_eq!(
                enc.encode(planes, true, &mut out).unwrap(),
                Some(PictureType::Idr)
            );
            assert_eq!(vcl_and_headers(&out), [7, 8, 5]);
        }
    }

    #[test]
    fn odd_size_in_4_2_0_is_an_open_error_with_x264_reason() {
        let err = Encoder::open(Config {
            width: 63,
            ..config(Chroma::I420)
        })
        .unwrap_err();
        assert!(matches!(err, X264Error::Open { width: 63, .. }), "{err}");
        // x264's own reason, caught from its log (where the log is routed to us).
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            assert!(err.to_string().contains("not divisible by 2"), "{err}");
        }
    }

    #[test]
    fn short_planes_are_rejected_not_read() {
        let mut enc = Encoder::open(config(Chroma::I420)).unwrap();
        let (y, c, cs) = grey(64, 31, Chroma::I420);
        let planes = Planes {
            y: &y,
            u: &c,
            v: &c,
            y_stride: 64,
            c_stride: cs,
        };
        let err = enc.encode(planes, false, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, X264Error::Planes(_)), "{err}");
    }

    #[test]
    fn bad_crf_is_refused() {
        assert!(Encoder::open(Config {
            crf: 52.0,
            ..config(Chroma::I420)
        })
        .is_err());
    }
}
