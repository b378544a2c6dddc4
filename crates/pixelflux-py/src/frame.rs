//! The pixelflux 2.x callback side: `StripeFrame` (one stripe per call, owning its bytes) and
//! the per-capture state that turns the core's stripes into 2.2.1's wire layout and keeps the
//! counters `stream_stats()` reports.
//!
//! 2.2.1's stripe headers, read from its wheel's output on an X11 capture (all `u16` BE):
//!
//! | kind | bytes | layout |
//! |---|---|---|
//! | JPEG | 6 | `0x03`, `0x00`, frame_id, y |
//! | H.264 | 12 | `0x04`, `codec<<4 \| kind` (`0x11` key, `0x10` delta), frame_id, y, width, height, reference id |
//!
//! The reference id of an H.264 key frame is its own frame_id; of a delta frame, the id of the
//! frame this stripe last sent (what the stripe's encoder predicts from). `StripeFrame`
//! carries it as `reference_frame_id`: -1 for a key frame, -2 for JPEG (not tracked).
//! With `omit_stripe_headers` the bytes are the payload alone.

use std::collections::HashMap;
use std::ffi::c_int;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use pixelflux::{Stripe, StripeKind};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `data_type` of a JPEG stripe (2.2.x).
pub(crate) const DATA_TYPE_JPEG: u8 = 0;
/// `data_type` of an H.264 stripe (2.2.x).
pub(crate) const DATA_TYPE_H264: u8 = 1;
/// 2.2.1's codec number for H.264 in the high nibble of header byte 1.
const CODEC_H264: u8 = 1;

/// One encoded stripe as handed to a 2.x callback. It owns its bytes: `memoryview(frame)` and
/// `bytes(frame)` stay valid after the callback returns, for as long as they are referenced.
#[pyclass(name = "StripeFrame", module = "pixelflux", frozen)]
pub(crate) struct PyStripeFrame {
    data: Vec<u8>,
    data_type: u8,
    stripe_y_start: u32,
    stripe_height: u32,
    frame_id: u64,
    reference_frame_id: i64,
    capture_ns: u64,
    encode_start_ns: u64,
    encode_end_ns: u64,
}

#[pymethods]
impl PyStripeFrame {
    /// Wraps already-encoded bytes (copied in), as `stripe_frame_from_buffer`.
    #[new]
    #[pyo3(signature = (data, data_type = 0, stripe_y_start = 0, stripe_height = 0, frame_id = 0))]
    fn new(
        data: Vec<u8>,
        data_type: u8,
        stripe_y_start: u32,
        stripe_height: u32,
        frame_id: u64,
    ) -> Self {
        Self {
            data,
            data_type,
            stripe_y_start,
            stripe_height,
            frame_id,
            reference_frame_id: -2,
            capture_ns: 0,
            encode_start_ns: 0,
            encode_end_ns: 0,
        }
    }

    /// 0 for JPEG, 1 for H.264 (2.2.x numbering).
    #[getter]
    fn data_type(&self) -> u8 {
        self.data_type
    }

    /// First row of the stripe in the captured region.
    #[getter]
    fn stripe_y_start(&self) -> u32 {
        self.stripe_y_start
    }

    /// Rows in the stripe.
    #[getter]
    fn stripe_height(&self) -> u32 {
        self.stripe_height
    }

    /// The capture's frame counter (the header carries it modulo 65536).
    #[getter]
    fn frame_id(&self) -> u64 {
        self.frame_id
    }

    /// The frame this one predicts from: its id, -1 for a frame that decodes on its own, -2
    /// where references are not tracked (JPEG).
    #[getter]
    fn reference_frame_id(&self) -> i64 {
        self.reference_frame_id
    }

    /// When the frame was grabbed, in `time.monotonic_ns()` nanoseconds (0 if unknown).
    #[getter]
    fn capture_ns(&self) -> u64 {
        self.capture_ns
    }

    /// When encoding started (`time.monotonic_ns()`); 0: not stamped by this build.
    #[getter]
    fn encode_start_ns(&self) -> u64 {
        self.encode_start_ns
    }

    /// When this stripe's encoding finished (`time.monotonic_ns()`; 0 if unknown).
    #[getter]
    fn encode_end_ns(&self) -> u64 {
        self.encode_end_ns
    }

    fn __len__(&self) -> usize {
        self.data.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "StripeFrame(data_type={}, frame_id={}, stripe_y_start={}, stripe_height={}, len={})",
            self.data_type,
            self.frame_id,
            self.stripe_y_start,
            self.stripe_height,
            self.data.len()
        )
    }

    /// Exposes the bytes read-only, without a copy; the view keeps this object alive.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        // SAFETY: `view` is what Python handed `__getbuffer__`; `data` belongs to this frozen
        // object.
        unsafe { crate::result::fill_readonly_buffer(slf.as_any(), &slf.get().data, view, flags) }
    }
}

/// Wraps already-encoded bytes into a `StripeFrame` (a copy), as 2.2.1's function of that name.
#[pyfunction]
#[pyo3(signature = (data, data_type = 0, stripe_y_start = 0, stripe_height = 0, frame_id = 0))]
pub(crate) fn stripe_frame_from_buffer(
    data: Vec<u8>,
    data_type: u8,
    stripe_y_start: u32,
    stripe_height: u32,
    frame_id: u64,
) -> PyStripeFrame {
    PyStripeFrame::new(data, data_type, stripe_y_start, stripe_height, frame_id)
}

/// Counters for `stream_stats()`.
#[derive(Default)]
struct Stats {
    frames: u64,
    bytes: u64,
    pipeline_ns: u64,
    /// Extremes since the previous read (`None`: no frame timed since).
    pipeline_min_ns: Option<u64>,
    pipeline_max_ns: u64,
    frame_max_bytes: u64,
    /// The frame being delivered: id, bytes so far, its pipeline time so far.
    current: Option<(u64, u64, u64)>,
}

impl Stats {
    fn add(&mut self, frame_id: u64, bytes: u64, pipeline_ns: u64) {
        match &mut self.current {
            Some((id, b, p)) if *id == frame_id => {
                *b += bytes;
                self.frame_max_bytes = self.frame_max_bytes.max(*b);
                self.bytes += bytes;
                if pipeline_ns > *p {
                    self.pipeline_ns += pipeline_ns - *p;
                    *p = pipeline_ns;
                    self.pipeline_max_ns = self.pipeline_max_ns.max(pipeline_ns);
                }
            }
            _ => {
                self.frames += 1;
                self.bytes += bytes;
                self.pipeline_ns += pipeline_ns;
                self.frame_max_bytes = self.frame_max_bytes.max(bytes);
                self.pipeline_max_ns = self.pipeline_max_ns.max(pipeline_ns);
                self.pipeline_min_ns = Some(
                    self.pipeline_min_ns
                        .map_or(pipeline_ns, |m| m.min(pipeline_ns)),
                );
                self.current = Some((frame_id, bytes, pipeline_ns));
            }
        }
    }
}

struct Inner {
    /// Per stripe (by first row): the last frame id sent, which a delta frame predicts from.
    last_sent: HashMap<u32, u64>,
    /// The highest frame id handed out so far.
    last_frame_id: Option<u64>,
    stats: Stats,
}

/// What a 2.x capture keeps across its stripes (and across a region change's restart).
pub(crate) struct FrameState {
    omit_headers: bool,
    /// `Instant` and `time.monotonic_ns()` read together, to stamp frames in Python's clock.
    anchor: (Instant, u64),
    inner: Mutex<Inner>,
}

impl FrameState {
    pub(crate) fn new(py: Python<'_>, omit_headers: bool) -> PyResult<Self> {
        let now = Instant::now();
        let mono: u64 = py
            .import("time")?
            .getattr("monotonic_ns")?
            .call0()?
            .extract()?;
        Ok(Self {
            omit_headers,
            anchor: (now, mono),
            inner: Mutex::new(Inner {
                last_sent: HashMap::new(),
                last_frame_id: None,
                stats: Stats::default(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mono_ns(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.anchor.0).as_nanos();
        self.anchor
            .1
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// Re-heads the core's stripe (1.2.2 layout) in 2.2.1's and records it.
    pub(crate) fn frame(&self, stripe: Stripe) -> PyStripeFrame {
        let mut inner = self.lock();
        let frame_id = stripe.frame_id;
        inner.last_frame_id = Some(inner.last_frame_id.map_or(frame_id, |l| l.max(frame_id)));
        let fid16 = (frame_id as u16).to_be_bytes();
        let y16 = (stripe.y as u16).to_be_bytes();
        let key = stripe.is_keyframe();
        let (data_type, reference, header) = match stripe.kind {
            StripeKind::Jpeg => (
                DATA_TYPE_JPEG,
                -2,
                vec![0x03, 0x00, fid16[0], fid16[1], y16[0], y16[1]],
            ),
            // Lossless stills need `paint_over_lossless`, which the Python API does not
            // expose, so none reach here; should one, it keeps its own tag (docs/serve.md)
            // and travels as a self-contained image like a JPEG.
            StripeKind::Still => (
                DATA_TYPE_JPEG,
                -2,
                vec![0x05, 0x01, fid16[0], fid16[1], y16[0], y16[1]],
            ),
            StripeKind::H264(_) => {
                let previous = inner.last_sent.insert(stripe.y, frame_id);
                let (reference, wire_ref) = match (key, previous) {
                    (false, Some(prev)) => (prev as i64, prev),
                    _ => (-1, frame_id),
                };
                let w16 = (stripe.width as u16).to_be_bytes();
                let h16 = (stripe.height as u16).to_be_bytes();
                let r16 = (wire_ref as u16).to_be_bytes();
                (
                    DATA_TYPE_H264,
                    reference,
                    vec![
                        0x04,
                        CODEC_H264 << 4 | u8::from(key),
                        fid16[0],
                        fid16[1],
                        y16[0],
                        y16[1],
                        w16[0],
                        w16[1],
                        h16[0],
                        h16[1],
                        r16[0],
                        r16[1],
                    ],
                )
            }
            // JPEG (`StripeKind` is non-exhaustive; the core makes no other kind today).
            _ => (
                DATA_TYPE_JPEG,
                -2,
                vec![0x03, 0x00, fid16[0], fid16[1], y16[0], y16[1]],
            ),
        };
        let mut data = stripe.data;
        let old_header = stripe.header_len.min(data.len());
        if self.omit_headers {
            data.drain(..old_header);
        } else {
            data.splice(..old_header, header);
        }
        let pipeline_ns = u64::try_from(
            stripe
                .encoded_at
                .saturating_duration_since(stripe.captured_at)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        inner.stats.add(frame_id, data.len() as u64, pipeline_ns);
        drop(inner);
        PyStripeFrame {
            data_type,
            stripe_y_start: stripe.y,
            stripe_height: stripe.height,
            frame_id,
            reference_frame_id: reference,
            capture_ns: self.mono_ns(stripe.captured_at),
            encode_start_ns: 0,
            encode_end_ns: self.mono_ns(stripe.encoded_at),
            data,
        }
    }

    /// `stream_stats()`'s dict; resets the extremes, as upstream's read does.
    pub(crate) fn stats_dict<'py>(
        &self,
        py: Python<'py>,
        encode_ns: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut inner = self.lock();
        let s = &mut inner.stats;
        let dict = PyDict::new(py);
        dict.set_item("frames", s.frames)?;
        dict.set_item("bytes", s.bytes)?;
        dict.set_item("encode_ns", encode_ns)?;
        dict.set_item("pipeline_ns", s.pipeline_ns)?;
        dict.set_item("pipeline_min_ns", s.pipeline_min_ns.unwrap_or(0))?;
        dict.set_item("pipeline_max_ns", s.pipeline_max_ns)?;
        dict.set_item("frame_max_bytes", s.frame_max_bytes)?;
        s.pipeline_min_ns = None;
        s.pipeline_max_ns = 0;
        s.frame_max_bytes = 0;
        Ok(dict)
    }
}

/// The closure the core calls for each stripe of a 2.x capture: `callback(frame)`.
pub(crate) fn deliver(
    function: Py<PyAny>,
    state: Arc<FrameState>,
) -> impl FnMut(Stripe) + Send + 'static {
    move |stripe: Stripe| {
        let frame = state.frame(stripe);
        Python::try_attach(|py| {
            let called = Py::new(py, frame).and_then(|obj| function.call1(py, (obj,)));
            if let Err(error) = called {
                error.write_unraisable(py, Some(function.bind(py)));
            }
        });
    }
}
