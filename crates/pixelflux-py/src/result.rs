//! `StripeEncodeResult`: one encoded stripe, owning its bytes.

use std::ffi::{c_int, c_void};

use pixelflux::Stripe;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// One encoded stripe as handed to the callback. Its bytes are freed with the object.
///
/// Supports the buffer protocol: `memoryview(result)` reads the same bytes as `result.data`
/// without copying them.
#[pyclass(name = "StripeEncodeResult", module = "pixelflux", frozen)]
pub(crate) struct PyStripeEncodeResult {
    kind: u8,
    frame_id: u64,
    y: u32,
    width: u32,
    height: u32,
    header_len: usize,
    /// Header and payload; never changed after construction, so a view can point into it.
    data: Vec<u8>,
}

impl From<Stripe> for PyStripeEncodeResult {
    fn from(stripe: Stripe) -> Self {
        Self {
            kind: stripe.kind.code(),
            frame_id: stripe.frame_id,
            y: stripe.y,
            width: stripe.width,
            height: stripe.height,
            header_len: stripe.header_len,
            data: stripe.data,
        }
    }
}

#[pymethods]
impl PyStripeEncodeResult {
    /// 1 for JPEG, 2 for H.264.
    #[getter(r#type)]
    fn kind(&self) -> u8 {
        self.kind
    }

    /// First row of the stripe in the captured region.
    #[getter]
    fn stripe_y_start(&self) -> u32 {
        self.y
    }

    /// Rows in the stripe.
    #[getter]
    fn stripe_height(&self) -> u32 {
        self.height
    }

    /// Width of the stripe in pixels (ours; 1.2.2 had none).
    #[getter]
    fn stripe_width(&self) -> u32 {
        self.width
    }

    /// Length of `data` in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.data.len()
    }

    /// Length of the header at the start of `data` (ours): 4 for JPEG, 10 for H.264.
    #[getter]
    fn header_size(&self) -> usize {
        self.header_len
    }

    /// Header and payload in 1.2.2's wire format (a new `bytes` object on each access).
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.data)
    }

    /// The frame counter of the capture (the header carries it modulo 65536).
    #[getter]
    fn frame_id(&self) -> u64 {
        self.frame_id
    }

    fn __len__(&self) -> usize {
        self.data.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "StripeEncodeResult(type={}, frame_id={}, stripe_y_start={}, stripe_height={}, size={})",
            self.kind,
            self.frame_id,
            self.y,
            self.height,
            self.data.len()
        )
    }

    /// Exposes `data` read-only, without a copy. The view holds a reference to this object,
    /// which keeps the bytes alive and unchanged for as long as the view exists.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        // SAFETY: `view` is what Python handed `__getbuffer__`; `data` belongs to this frozen
        // object.
        unsafe { fill_readonly_buffer(slf.as_any(), &slf.get().data, view, flags) }
    }
}

/// Fills `view` with a read-only view of `data`, which `owner` (a frozen pyclass) owns: the
/// body of every `__getbuffer__` here (`StripeEncodeResult`, 2.x's `StripeFrame`).
///
/// # Safety
/// `view` must be the (possibly null) `Py_buffer` that Python passed to `owner`'s
/// `__getbuffer__`, and `data` must be owned by `owner` and never mutated while it lives.
pub(crate) unsafe fn fill_readonly_buffer(
    owner: &Bound<'_, PyAny>,
    data: &[u8],
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("no buffer view to fill"));
    }
    let len = ffi::Py_ssize_t::try_from(data.len())
        .map_err(|_| PyBufferError::new_err("stripe too large for a buffer"))?;
    // SAFETY: `view` is non-null and points to the Py_buffer Python asked us to fill. The
    // pointer and length describe `data`, which `owner` owns and never mutates;
    // PyBuffer_FillInfo stores a new reference to `owner` in `view.obj`, so the bytes outlive
    // the view. readonly=1 makes it refuse PyBUF_WRITABLE requests.
    let rc = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            data.as_ptr() as *mut c_void,
            len,
            1,
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(owner.py()))
    }
}
