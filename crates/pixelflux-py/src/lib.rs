//! The native part of the Python package `pixelflux`: a drop-in for the pixelflux 1.2.2 API
//! (`CaptureSettings`, `ScreenCapture`, `StripeCallback`, `StripeEncodeResult`) over the Rust
//! core. The package `python/pixelflux` re-exports it as `pixelflux`.

mod api2;
mod capture;
mod cursor;
mod frame;
mod result;
mod settings;

use pyo3::prelude::*;

/// Native module behind the `pixelflux` package.
#[pymodule]
fn _pixelflux(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<settings::PyCaptureSettings>()?;
    m.add_class::<capture::PyScreenCapture>()?;
    m.add_class::<capture::PyStripeCallback>()?;
    m.add_class::<result::PyStripeEncodeResult>()?;
    m.add_class::<frame::PyStripeFrame>()?;
    m.add_function(wrap_pyfunction!(frame::stripe_frame_from_buffer, m)?)?;
    api2::register(m)?;
    m.add_function(wrap_pyfunction!(capture::_stop_all, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    for (name, value) in [
        ("OUTPUT_MODE_JPEG", 0),
        ("OUTPUT_MODE_H264", 1),
        ("STRIPE_TYPE_JPEG", 1),
        ("STRIPE_TYPE_H264", 2),
        ("WATERMARK_NONE", 0),
        ("WATERMARK_TOP_LEFT", 1),
        ("WATERMARK_TOP_RIGHT", 2),
        ("WATERMARK_BOTTOM_LEFT", 3),
        ("WATERMARK_BOTTOM_RIGHT", 4),
        ("WATERMARK_MIDDLE", 5),
        ("WATERMARK_ANIMATED", 6),
    ] {
        m.add(name, value)?;
    }
    Ok(())
}
