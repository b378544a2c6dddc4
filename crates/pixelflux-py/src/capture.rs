//! `ScreenCapture` and `StripeCallback`: starting, stopping and calling back into Python.
//!
//! Threads and the GIL: the core captures and encodes on threads of its own, which attach to
//! Python only to call the callback. `stop_capture()` releases the GIL while it joins, so a
//! callback waiting for the GIL can finish. The one lock here (`ScreenCapture.active`) is held
//! only to read or swap an `Arc`: never while Python code runs, never while the GIL is being
//! released or taken, so it cannot take part in a deadlock with the GIL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pixelflux::{
    CaptureError, CaptureSettings, PipelineConfig, ScreenCapture, SourceError, SourceSpec, Stripe,
};
use pyo3::exceptions::{
    PyConnectionError, PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyRuntimeError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

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
}

impl PyScreenCapture {
    fn current(&self) -> Option<Arc<Active>> {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        }
    }

    /// Starts capturing with `settings`, calling `callback(result, user_data)` for every
    /// encoded stripe from a background thread. `callback` is a `StripeCallback` (or, ours,
    /// any callable). Raises `RuntimeError` if this object is already capturing, `ValueError`
    /// for bad settings (or a region off the screen), `ConnectionError` when the X display
    /// cannot be opened.
    #[pyo3(signature = (settings, callback, user_data = None))]
    fn start_capture(
        &self,
        py: Python<'_>,
        settings: PyRef<'_, PyCaptureSettings>,
        callback: &Bound<'_, PyAny>,
        user_data: Option<Py<PyAny>>,
    ) -> PyResult<()> {
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
        let core: CaptureSettings = settings.to_core()?;
        let spec: SourceSpec = settings.source();
        drop(settings);
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

        let user_data = user_data.unwrap_or_else(|| py.None());
        // The GIL stays held while starting, so the first callback cannot run (and, say, call
        // stop_capture) before this object knows about the capture. Opening the display and
        // spawning the thread take milliseconds.
        let capture = ScreenCapture::start_config(config, &spec, deliver(function, user_data))
            .map_err(start_error)?;
        let active = Arc::new(Active {
            capture,
            stop_requested: AtomicBool::new(false),
            error_logged: AtomicBool::new(false),
        });
        {
            let mut registry = live();
            registry.retain(|w| w.strong_count() > 0);
            registry.push(Arc::downgrade(&active));
        }
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(active);
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
    }
}
