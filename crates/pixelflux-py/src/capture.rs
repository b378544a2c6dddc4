//! `ScreenCapture` and `StripeCallback`: starting, stopping and calling back into Python.
//!
//! Threads and the GIL: the core captures and encodes on threads of its own, which attach to
//! Python only to call the callback. `stop_capture()` releases the GIL while it joins, so a
//! callback waiting for the GIL can finish. The one lock here (`ScreenCapture.active`) is held
//! only to read or swap an `Arc`: never while Python code runs, never while the GIL is being
//! released or taken, so it cannot take part in a deadlock with the GIL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pixelflux::{
    CaptureError, CaptureSettings, Codec, Control, ControlError, PipelineConfig, ScreenCapture,
    SourceError, SourceSpec, Stripe,
};
use pyo3::exceptions::{
    PyConnectionError, PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::cursor::CursorMonitor;
use crate::frame::FrameState;
use crate::result::PyStripeEncodeResult;
use crate::settings::PyCaptureSettings;

/// Wraps the function that receives the stripes, as in 1.2.2. The function is called as
/// `fn(result, user_data)` from a background thread.
#[pyclass(name = "StripeCallback", module = "pixelflux", frozen)]
pub(crate) struct PyStripeCallback {
    function: Py<PyAny>,
}

#[pymethods]
impl PyStripeCallback {
    #[new]
    fn new(function: Bound<'_, PyAny>) -> PyResult<Self> {
        if !function.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "StripeCallback needs a callable, not {}",
                function.get_type().name()?
            )));
        }
        Ok(Self {
            function: function.unbind(),
        })
    }

    /// The wrapped function.
    #[getter]
    fn function(&self, py: Python<'_>) -> Py<PyAny> {
        self.function.clone_ref(py)
    }

    /// Calls the wrapped function.
    #[pyo3(signature = (result, user_data = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        result: Py<PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.function.call1(py, (result, user_data))
    }
}

/// A started capture, shared between the Python object, the module's list of live captures
/// (stopped at interpreter exit) and a stop call in flight.
struct Active {
    capture: ScreenCapture,
    /// What started it, to start it again with another region.
    origin: Origin,
    /// `stop_capture()` was called: the capture counts as over even while its thread is still
    /// finishing a callback (a stop from inside the callback cannot join).
    stop_requested: AtomicBool,
    /// The error that ended the capture has been logged.
    error_logged: AtomicBool,
}

impl Active {
    fn is_live(&self) -> bool {
        self.capture.is_running() && !self.stop_requested.load(Ordering::Acquire)
    }

    /// Stops and joins (unless called on the capture thread itself); releases the GIL while
    /// waiting, then logs the error that ended the capture, once.
    fn stop(&self, py: Python<'_>) {
        self.stop_requested.store(true, Ordering::Release);
        let error = py.detach(|| self.capture.stop());
        if let Some(error) = error {
            if !self.error_logged.swap(true, Ordering::AcqRel) {
                log_error(py, &format!("capture ended with an error: {error}"));
            }
        }
    }
}

/// The callback side of a capture and its source, kept so that a region change can restart
/// the core capture with the same delivery (until the core changes regions live).
#[derive(Clone)]
struct Origin {
    spec: SourceSpec,
    delivery: Delivery,
}

#[derive(Clone)]
enum Delivery {
    /// 1.2.2: `fn(result, user_data)`.
    V1 {
        function: Arc<Py<PyAny>>,
        user_data: Arc<Py<PyAny>>,
    },
    /// 2.x: `callback(frame)`.
    V2 {
        function: Arc<Py<PyAny>>,
        state: Arc<FrameState>,
    },
}

impl Origin {
    fn start(&self, py: Python<'_>, config: PipelineConfig) -> Result<ScreenCapture, CaptureError> {
        match &self.delivery {
            Delivery::V1 {
                function,
                user_data,
            } => ScreenCapture::start_config(
                config,
                &self.spec,
                deliver(function.clone_ref(py), user_data.clone_ref(py)),
            ),
            Delivery::V2 { function, state } => ScreenCapture::start_config(
                config,
                &self.spec,
                crate::frame::deliver(function.clone_ref(py), Arc::clone(state)),
            ),
        }
    }
}

/// Captures started and not yet known to be stopped; `_stop_all` (run at exit) ends them
/// before the interpreter goes away under their threads.
static LIVE: Mutex<Vec<Weak<Active>>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<Weak<Active>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_error(py: Python<'_>, message: &str) {
    let logged = py
        .import("logging")
        .and_then(|logging| logging.getattr("getLogger")?.call1(("pixelflux",)))
        .and_then(|logger| logger.call_method1("error", (message,)));
    if let Err(e) = logged {
        e.write_unraisable(py, None);
    }
}

/// Stops every capture still running. Registered with `atexit` by the package.
#[pyfunction]
pub(crate) fn _stop_all(py: Python<'_>) {
    let captures: Vec<Arc<Active>> = std::mem::take(&mut *live())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for active in &captures {
        active.stop(py);
    }
}

fn lock_monitor(m: &Mutex<Option<CursorMonitor>>) -> MutexGuard<'_, Option<CursorMonitor>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns a refused control into the Python exception that fits it.
/// `ValueError` naming the field when `settings` (the defaults with one field changed) are
/// not valid: the core's checks, so a method takes what the field takes.
fn check_setting(settings: CaptureSettings) -> PyResult<()> {
    settings
        .validate()
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn control_error(error: ControlError) -> PyErr {
    let message = error.to_string();
    match error {
        ControlError::Invalid(_)
        | ControlError::NotApplicable { .. }
        | ControlError::Source(SourceError::RegionOutsideScreen { .. }) => {
            PyValueError::new_err(message)
        }
        _ => PyRuntimeError::new_err(message),
    }
}

/// Turns a failure to start into the Python exception that fits it, with the core's message.
fn start_error(error: CaptureError) -> PyErr {
    let message = error.to_string();
    match error {
        CaptureError::Settings(_) => PyValueError::new_err(message),
        CaptureError::Source(SourceError::RegionOutsideScreen { .. }) => {
            PyValueError::new_err(message)
        }
        CaptureError::Source(SourceError::Connect { .. }) => PyConnectionError::new_err(message),
        CaptureError::Source(_) => PyOSError::new_err(message),
        CaptureError::Overlay(_) => PyValueError::new_err(message),
        _ => PyRuntimeError::new_err(message),
    }
}

/// Captures a screen region, sending each changed, encoded stripe to a callback.
#[pyclass(name = "ScreenCapture", module = "pixelflux", frozen, weakref)]
pub(crate) struct PyScreenCapture {
    active: Mutex<Option<Arc<Active>>>,
    /// 2.x rate hints, stored (no constant-bitrate mode in this build).
    bitrate_kbps: AtomicU64,
    link_rate_kbps: AtomicU64,
    /// `f64` bits.
    vbv_multiplier: AtomicU64,
    /// Set by `set_cursor_callback`; called by `cursor_monitor` while capturing.
    cursor_callback: Mutex<Option<Py<PyAny>>>,
    /// Watches the captured display's cursor while a capture runs and a callback is set.
    cursor_monitor: Mutex<Option<CursorMonitor>>,
    /// `cursor_size_cap` of the running capture (0: no cap).
    cursor_cap: AtomicU64,
}

impl PyScreenCapture {
    fn current(&self) -> Option<Arc<Active>> {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `capture` this object's current capture and registers it for the exit hook.
    fn install(&self, py: Python<'_>, capture: ScreenCapture, origin: Origin) {
        let active = Arc::new(Active {
            capture,
            origin,
            stop_requested: AtomicBool::new(false),
            error_logged: AtomicBool::new(false),
        });
        {
            let mut registry = live();
            registry.retain(|w| w.strong_count() > 0);
            registry.push(Arc::downgrade(&active));
        }
        let previous = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(active);
        // Two region changes at once each start a capture; the one replaced is stopped here
        // (GIL released) rather than dropped with the GIL held.
        if let Some(previous) = previous {
            previous.stop(py);
        }
    }

    /// Stops the cursor monitor (GIL released while it is joined: it may be waiting for it).
    fn stop_cursor(&self, py: Python<'_>) {
        let monitor = lock_monitor(&self.cursor_monitor).take();
        if let Some(mut monitor) = monitor {
            py.detach(|| monitor.stop());
        }
    }

    /// (Re)starts the cursor monitor for the live capture's display when a cursor callback
    /// is set; stops it otherwise. A monitor that cannot start is logged, not raised.
    fn restart_cursor(&self, py: Python<'_>) {
        self.stop_cursor(py);
        let callback = self
            .cursor_callback
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.clone_ref(py));
        let (Some(callback), Some(active)) = (callback, self.live()) else {
            return;
        };
        let SourceSpec::X11 { display } = &active.origin.spec else {
            return;
        };
        let cap = u32::try_from(self.cursor_cap.load(Ordering::Relaxed)).unwrap_or(u32::MAX);
        match CursorMonitor::start(display.as_deref(), cap, callback) {
            Ok(monitor) => *lock_monitor(&self.cursor_monitor) = Some(monitor),
            Err(e) => log_error(py, &format!("no cursor callbacks: {e}")),
        }
    }

    /// Sends `control` to the live capture; nothing without one (as 2.2.1's methods).
    fn control(&self, control: Control) -> PyResult<()> {
        let Some(active) = self.live() else {
            return Ok(());
        };
        match active.capture.control(control) {
            Ok(()) | Err(ControlError::Ended) => Ok(()),
            Err(e) => Err(control_error(e)),
        }
    }

    /// The live capture, or None (2.x control methods then do nothing, as 2.2.1's).
    fn live(&self) -> Option<Arc<Active>> {
        self.current().filter(|a| a.is_live())
    }

    /// Removes `active` from this object if it is still the current capture.
    fn forget(&self, active: &Arc<Active>) -> Option<Arc<Active>> {
        let mut slot = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|a| Arc::ptr_eq(a, active)) {
            slot.take()
        } else {
            None
        }
    }
}

/// Builds the closure the core calls on its capture thread for each stripe.
fn deliver(function: Py<PyAny>, user_data: Py<PyAny>) -> impl FnMut(Stripe) + Send + 'static {
    move |stripe: Stripe| {
        // Convert without the GIL; attach only to make the object and call.
        let result = PyStripeEncodeResult::from(stripe);
        // While the interpreter shuts down the stripe is dropped instead.
        Python::try_attach(|py| {
            let called = Py::new(py, result)
                .and_then(|obj| function.call1(py, (obj, user_data.clone_ref(py))));
            if let Err(error) = called {
                // Reported like an exception in a thread; the capture goes on.
                error.write_unraisable(py, Some(function.bind(py)));
            }
        });
    }
}

#[pymethods]
impl PyScreenCapture {
    #[new]
    fn new() -> Self {
        Self {
            active: Mutex::new(None),
            bitrate_kbps: AtomicU64::new(4000),
            link_rate_kbps: AtomicU64::new(0),
            vbv_multiplier: AtomicU64::new(0),
            cursor_callback: Mutex::new(None),
            cursor_monitor: Mutex::new(None),
            cursor_cap: AtomicU64::new(128),
        }
    }

    /// Starts capturing from a background thread, in either API's shape, told apart by the
    /// argument types:
    ///
    /// - pixelflux 1.2.2: `start_capture(settings, callback[, user_data])`, `callback` a
    ///   `StripeCallback` (or any callable), called as `callback(result, user_data)` with a
    ///   `StripeEncodeResult` in 1.2.2's wire format;
    /// - pixelflux 2.x: `start_capture(callback, settings)`, called as `callback(frame)` with a
    ///   `StripeFrame` in 2.2.1's wire format.
    ///
    /// Raises `RuntimeError` if this object is already capturing, `ValueError` for bad
    /// settings (or a region off the screen), `ConnectionError` when the X display cannot be
    /// opened, `FileNotFoundError` for a missing watermark or a named device that does not
    /// exist (2.x `encode_node_path`, `render_node_path`, `encode_node_index`).
    #[pyo3(signature = (settings, callback, user_data = None))]
    fn start_capture(
        &self,
        py: Python<'_>,
        settings: &Bound<'_, PyAny>,
        callback: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let v2 = !settings.is_instance_of::<PyCaptureSettings>()
            && callback.is_instance_of::<PyCaptureSettings>();
        let (settings, callback) = if v2 {
            if user_data.is_some() {
                return Err(PyTypeError::new_err(
                    "start_capture(callback, settings) takes no user_data (pixelflux 2.x shape)",
                ));
            }
            (callback, settings)
        } else {
            (settings, callback)
        };
        let settings =
            settings.cast::<PyCaptureSettings>().map_err(|_| {
                PyTypeError::new_err(format!(
                "start_capture takes (settings, callback[, user_data]) or (callback, settings) \
                 with a CaptureSettings, got a {}",
                settings.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
            })?;
        let function = if let Ok(handler) = callback.cast::<PyStripeCallback>() {
            handler.get().function.clone_ref(py)
        } else if callback.is_callable() {
            callback.clone().unbind()
        } else {
            return Err(PyTypeError::new_err(format!(
                "callback must be a StripeCallback or a callable, not {}",
                callback.get_type().name()?
            )));
        };
        let settings = settings.borrow();
        let core: CaptureSettings = settings.to_core()?;
        let spec: SourceSpec = settings.source();
        let extra = settings.extra.clone();
        drop(settings);
        if v2 {
            crate::api2::check_hardware(py, &extra)?;
        }
        // The core decides what is drawn (a path with location 0 draws nothing).
        let config =
            PipelineConfig::new(&core).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(watermark) = &config.overlays().watermark {
            let path = &watermark.path;
            if path.is_dir() {
                return Err(PyIsADirectoryError::new_err(format!(
                    "watermark_path: {} is a directory, not a PNG file",
                    path.display()
                )));
            }
            if !path.exists() {
                return Err(PyFileNotFoundError::new_err(format!(
                    "watermark_path: no such file: {}",
                    path.display()
                )));
            }
        }

        // Finish off a capture that has ended or was asked to stop (from its callback, say).
        loop {
            let previous = self.current();
            match previous {
                Some(ref active) if active.is_live() => {
                    return Err(PyRuntimeError::new_err(
                        "capture already running: call stop_capture() first",
                    ))
                }
                Some(active) => {
                    active.stop(py);
                    self.forget(&active);
                }
                None => break,
            }
        }

        let delivery = if v2 {
            Delivery::V2 {
                function: Arc::new(function),
                state: Arc::new(FrameState::new(py, extra.bool("omit_stripe_headers"))?),
            }
        } else {
            Delivery::V1 {
                function: Arc::new(function),
                user_data: Arc::new(user_data.unwrap_or_else(|| py.None())),
            }
        };
        let origin = Origin { spec, delivery };
        // The GIL stays held while starting, so the first callback cannot run (and, say, call
        // stop_capture) before this object knows about the capture. Opening the display and
        // spawning the thread take milliseconds.
        let capture = origin.start(py, config).map_err(start_error)?;
        self.install(py, capture, origin);
        let cap = if v2 { extra.int("cursor_size_cap") } else { 0 };
        self.cursor_cap
            .store(u64::try_from(cap).unwrap_or(0), Ordering::Relaxed);
        self.restart_cursor(py);
        Ok(())
    }

    /// Stops capturing and waits for the capture thread to exit, with the GIL released.
    /// Idempotent. From inside the callback it asks the capture to end once the callback
    /// returns. An error that ended the capture is logged (logger "pixelflux"), not raised.
    fn stop_capture(&self, py: Python<'_>) {
        let Some(active) = self.current() else {
            return;
        };
        // The ended capture stays here (its thread and X connection are gone) so that
        // `error` can still be read; the next start_capture replaces it.
        active.stop(py);
        self.stop_cursor(py);
    }

    /// Makes the next frame a full refresh: every stripe is sent, H.264 stripes as IDR frames.
    fn request_idr(&self) {
        if let Some(active) = self.current() {
            active.capture.request_idr();
        }
    }

    /// Whether a capture is running (ours).
    #[getter]
    fn is_running(&self) -> bool {
        self.current().is_some_and(|a| a.is_live())
    }

    /// The stream the current (or last) capture encodes, as a dict — `width`, `height` (after
    /// H.264's rounding down to even sizes), `codec` (`"jpeg"` or `"h264"`), `stripe_height`
    /// (rows per stripe; the full height in H.264 full-frame mode), `h264_fullcolor` — or None
    /// before the first start (ours).
    #[getter]
    fn stream_format<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(active) = self.current() else {
            return Ok(None);
        };
        let format = active.capture.format();
        let dict = PyDict::new(py);
        dict.set_item("width", format.width)?;
        dict.set_item("height", format.height)?;
        dict.set_item("codec", format.codec.name())?;
        dict.set_item("stripe_height", format.stripe_height)?;
        dict.set_item("h264_fullcolor", format.h264_fullcolor)?;
        Ok(Some(dict))
    }

    // ---- pixelflux 2.x control and status (docs/python.md, "pixelflux 2.x API") ----

    /// Whether a capture is running (2.x name of `is_running`).
    #[getter]
    fn is_capturing(&self) -> bool {
        self.is_running()
    }

    /// Makes the next frame a full refresh, H.264 stripes as IDRs (2.x name of `request_idr`).
    fn request_idr_frame(&self) {
        self.request_idr();
    }

    /// New target frame rate, applied between two frames. `ValueError` outside the core's
    /// `target_fps` range, 0.01..=1000 (NaN too), with or without a capture; nothing else
    /// happens without a running capture.
    fn update_framerate(&self, fps: f64) -> PyResult<()> {
        check_setting(CaptureSettings {
            target_fps: fps,
            ..CaptureSettings::default()
        })?;
        self.control(Control::SetFps(fps))
    }

    /// Applies the live subset of `settings` to the running capture between two frames:
    /// `jpeg_quality` and `paint_over_jpeg_quality` (JPEG), `video_crf`/`h264_crf` (H.264;
    /// the stripes restart as IDRs), `video_bitrate_kbps` (H.264, no IDR) and `target_fps`. Only values that differ from the running
    /// ones are applied; settings of the other codec are ignored. The other fields need a
    /// restart (`stop_capture`, `start_capture`) and are ignored here, as in 2.2.1.
    fn update_tunables(&self, settings: PyRef<'_, PyCaptureSettings>) -> PyResult<()> {
        let settings_py = settings.py();
        let Some(active) = self.live() else {
            return Ok(());
        };
        let wanted = settings.to_core()?;
        let cap = u64::try_from(settings.extra.int("cursor_size_cap")).unwrap_or(0);
        drop(settings);
        if cap != self.cursor_cap.swap(cap, Ordering::Relaxed) {
            self.restart_cursor(settings_py);
        }
        let running = active.capture.settings();
        let mut controls = Vec::new();
        if wanted.target_fps != running.target_fps {
            controls.push(Control::SetFps(wanted.target_fps));
        }
        match running.output_mode {
            Codec::Jpeg => {
                if wanted.jpeg_quality != running.jpeg_quality {
                    controls.push(Control::SetJpegQuality(wanted.jpeg_quality));
                }
                if wanted.paint_over_jpeg_quality != running.paint_over_jpeg_quality {
                    controls.push(Control::SetPaintOverJpegQuality(
                        wanted.paint_over_jpeg_quality,
                    ));
                }
            }
            Codec::H264 => {
                if wanted.h264_crf != running.h264_crf {
                    controls.push(Control::SetCrf(wanted.h264_crf));
                }
                if wanted.video_bitrate_kbps != running.video_bitrate_kbps {
                    controls.push(Control::SetBitrate(wanted.video_bitrate_kbps));
                }
            }
            // A codec this binding does not know has no live controls of its own.
            _ => {}
        }
        for control in controls {
            match active.capture.control(control) {
                Ok(()) | Err(ControlError::Ended) | Err(ControlError::NotApplicable { .. }) => {}
                Err(e) => return Err(control_error(e)),
            }
        }
        Ok(())
    }

    /// New target bitrate (kbps) of a running H.264 capture, applied between two frames
    /// through the core's control path (`Control::SetBitrate`): under `video_cbr_mode` the
    /// encoders take it without a key frame and the delivered rate follows within a second;
    /// under CRF it is stored (2.2.1's capped CRF is not implemented). Ignored by a JPEG
    /// capture; `ValueError` for a rate outside 0..=1000000 (0 under CBR). Also kept for
    /// `rate_hints()`.
    fn update_video_bitrate(&self, kbps: i64) -> PyResult<()> {
        let max = i64::from(pixelflux::settings::MAX_BITRATE_KBPS);
        let rate = u32::try_from(kbps)
            .ok()
            .filter(|&k| i64::from(k) <= max)
            .ok_or_else(|| {
                PyValueError::new_err(format!("kbps must be within 0..={max}, got {kbps}"))
            })?;
        if let Some(active) = self.live() {
            match active.capture.control(Control::SetBitrate(rate)) {
                Ok(()) | Err(ControlError::Ended) | Err(ControlError::NotApplicable { .. }) => {}
                Err(e) => return Err(control_error(e)),
            }
        }
        self.bitrate_kbps.store(u64::from(rate), Ordering::Relaxed);
        Ok(())
    }

    /// Stores a VBV multiplier for `rate_hints()`; not applied to a running capture (the
    /// settings' `video_vbv_multiplier` sets it at start). `ValueError` where that field
    /// would refuse it: not finite, negative or over 1000.
    fn update_vbv_multiplier(&self, multiplier: f64) -> PyResult<()> {
        check_setting(CaptureSettings {
            video_vbv_multiplier: multiplier,
            ..CaptureSettings::default()
        })?;
        self.vbv_multiplier
            .store(multiplier.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// Stores the rate (kbps) the transport measures; not used by this build's encoders.
    fn update_link_rate(&self, kbps: i64) {
        self.link_rate_kbps
            .store(u64::try_from(kbps).unwrap_or(0), Ordering::Relaxed);
    }

    /// The last `update_video_bitrate`, `update_link_rate` and `update_vbv_multiplier`
    /// values, as stored (ours): `{"video_bitrate_kbps", "link_rate_kbps", "vbv_multiplier"}`.
    fn rate_hints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(
            "video_bitrate_kbps",
            self.bitrate_kbps.load(Ordering::Relaxed),
        )?;
        d.set_item(
            "link_rate_kbps",
            self.link_rate_kbps.load(Ordering::Relaxed),
        )?;
        d.set_item(
            "vbv_multiplier",
            f64::from_bits(self.vbv_multiplier.load(Ordering::Relaxed)),
        )?;
        Ok(d)
    }

    /// Moves or resizes the running capture's region (root-relative), live through the core's
    /// control path: the capture, its thread and the callback go on; from the next frame the
    /// stripes have the new size, that frame is complete (every stripe, H.264 as IDRs, no
    /// black frame) and frame ids go on increasing. A width or height <= 0 reaches the root
    /// window's edge (as 2.2.1). `ValueError` for a region off the screen or a size settings
    /// refuse (the capture then goes on with the old region). Nothing happens without a
    /// running capture.
    fn update_capture_region(&self, x: i32, y: i32, width: i64, height: i64) -> PyResult<()> {
        let Some(active) = self.live() else {
            return Ok(());
        };
        let (width, height) = if width <= 0 || height <= 0 {
            // 2.2.1: a size <= 0 reaches the root window's edge.
            let SourceSpec::X11 { display } = &active.origin.spec else {
                return Err(PyValueError::new_err(
                    "update_capture_region: width and height must be > 0 for a synthetic scene",
                ));
            };
            let (root_w, root_h) = crate::cursor::root_size(display.as_deref())
                .map_err(|e| PyConnectionError::new_err(format!("update_capture_region: {e}")))?;
            let edge = |size: i64, origin: i32, root: u32| -> u32 {
                if size > 0 {
                    u32::try_from(size).unwrap_or(u32::MAX)
                } else {
                    root.saturating_sub(u32::try_from(origin.max(0)).unwrap_or(0))
                }
            };
            (edge(width, x, root_w), edge(height, y, root_h))
        } else {
            (
                u32::try_from(width).unwrap_or(u32::MAX),
                u32::try_from(height).unwrap_or(u32::MAX),
            )
        };
        match active.capture.control(Control::SetRegion {
            x,
            y,
            width,
            height,
        }) {
            Ok(()) | Err(ControlError::Ended) => Ok(()),
            Err(e) => Err(control_error(e)),
        }
    }

    /// Registers the cursor callback, called from a background thread as
    /// `callback("png", png_bytes, hotspot_x, hotspot_y)` with the current X cursor and then
    /// on every change while capturing (2.2.1's X11 shape; images larger than
    /// `cursor_size_cap` are scaled down). `None` withdraws it.
    fn set_cursor_callback(&self, py: Python<'_>, callback: Option<Py<PyAny>>) {
        *self
            .cursor_callback
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = callback;
        self.restart_cursor(py);
    }

    /// Withdraws the cursor callback.
    fn clear_cursor_callback(&self, py: Python<'_>) {
        self.set_cursor_callback(py, None);
    }

    /// What the running capture streams, with 2.2.1's keys (`backend`, `capture`, `zero_copy`,
    /// `zero_copy_available`, `capture_reason`, `encoder`, `hardware`, `encoder_reason`,
    /// `codec`, `fullcolor`, `bit_depth`, `full_range`, `striped`, `gpu`, `driver`,
    /// `encode_node`), or None without a running capture.
    fn stream_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(active) = self.live() else {
            return Ok(None);
        };
        let shm = matches!(active.origin.spec, SourceSpec::X11 { .. });
        crate::api2::stream_info(py, &active.capture.format(), shm).map(Some)
    }

    /// Counters of the running 2.x capture since it started, with 2.2.1's keys: `frames` and
    /// `bytes` delivered, `encode_ns` (encoding, summed over stripes), `pipeline_ns` (grab
    /// to end of encode, per frame), and since the previous read `pipeline_min_ns`,
    /// `pipeline_max_ns`, `frame_max_bytes`. None without a running capture; for a capture
    /// started in 1.2.2's shape `frames`/`bytes` come from the core and the timing keys are 0.
    fn stream_stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(active) = self.live() else {
            return Ok(None);
        };
        let stats = active.capture.stats();
        match &active.origin.delivery {
            Delivery::V2 { state, .. } => state.stats_dict(py, stats.stage_ns.encode).map(Some),
            Delivery::V1 { .. } => {
                let d = PyDict::new(py);
                d.set_item("frames", stats.frames_sent)?;
                d.set_item("bytes", stats.bytes)?;
                d.set_item("encode_ns", stats.stage_ns.encode)?;
                for key in [
                    "pipeline_ns",
                    "pipeline_min_ns",
                    "pipeline_max_ns",
                    "frame_max_bytes",
                ] {
                    d.set_item(key, 0)?;
                }
                Ok(Some(d))
            }
        }
    }

    /// The codec being streamed (`"jpeg"`, `"h264"`), or None without a running capture.
    fn active_codec(&self) -> Option<&'static str> {
        self.live().map(|a| a.capture.format().codec.name())
    }

    /// `(state, last_error)`: `"running"`, `"failed"` (with the error) or `"idle"`.
    #[pyo3(signature = (display_id = 0))]
    fn capture_state(&self, display_id: i64) -> (&'static str, Option<String>) {
        let _ = display_id;
        match self.current() {
            Some(a) if a.is_live() => ("running", None),
            Some(a) => match a.capture.error() {
                Some(e) => ("failed", Some(e.to_string())),
                None => ("idle", None),
            },
            None => ("idle", None),
        }
    }

    // Wayland output management: this build has no compositor, so these answer as 2.2.1's do
    // when no Wayland backend runs.

    /// Always False (no Wayland backend).
    #[pyo3(signature = (id, width, height, x = 0, y = 0, scale = 1.0))]
    fn create_output(&self, id: i64, width: i64, height: i64, x: i64, y: i64, scale: f64) -> bool {
        let _ = (id, width, height, x, y, scale);
        false
    }

    /// Always False (no Wayland backend).
    fn destroy_output(&self, id: i64) -> bool {
        let _ = id;
        false
    }

    /// Always False (no Wayland backend).
    fn reposition_output(&self, id: i64, x: i64, y: i64) -> bool {
        let _ = (id, x, y);
        false
    }

    /// Always False (no Wayland backend).
    #[pyo3(signature = (id, width, height, scale = 1.0))]
    fn resize_output(&self, id: i64, width: i64, height: i64, scale: f64) -> bool {
        let _ = (id, width, height, scale);
        false
    }

    /// Always -1 (no Wayland backend).
    fn output_capacity(&self) -> i64 {
        -1
    }

    /// Always None (X11 has no compositor to read back).
    #[pyo3(signature = (display_id = 0))]
    fn get_realized_geometry(&self, display_id: i64) -> Option<(i64, i64, f64)> {
        let _ = display_id;
        None
    }

    /// Always empty (no Wayland backend).
    fn list_outputs(&self) -> Vec<(i64, i64, i64, i64, i64, f64, bool)> {
        Vec::new()
    }

    /// The error that ended the last capture, as text, or None (ours).
    #[getter]
    fn error(&self) -> Option<String> {
        self.current()
            .and_then(|a| a.capture.error())
            .map(|e| e.to_string())
    }
}

impl Drop for PyScreenCapture {
    fn drop(&mut self) {
        let active = self
            .active
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(active) = active {
            // Deallocation runs with the GIL held; release it while the thread is joined so a
            // callback waiting for it can finish.
            Python::attach(|py| active.stop(py));
        }
        let monitor = self
            .cursor_monitor
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut monitor) = monitor {
            Python::attach(|py| py.detach(|| monitor.stop()));
        }
    }
}
