//! The native part of the Python package `pixelflux`: a drop-in for the pixelflux 1.2.2 API
//! (`CaptureSettings`, `ScreenCapture`, `StripeCallback`, `StripeEncodeResult`) over the Rust
//! core. The package `python/pixelflux` re-exports it as `pixelflux`.

mod api2;
mod capture;
mod cursor;
mod frame;
mod result;
mod settings;

use pixelflux::{Codec, WatermarkLocation};
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
    // 1.2.2's integer constants, their values from the core's enums.
    for codec in Codec::ALL {
        let name = codec.name().to_ascii_uppercase();
        m.add(format!("OUTPUT_MODE_{name}"), codec.index())?;
        m.add(format!("STRIPE_TYPE_{name}"), codec.stripe_type())?;
    }
    for (name, location) in [
        ("WATERMARK_NONE", WatermarkLocation::None),
        ("WATERMARK_TOP_LEFT", WatermarkLocation::TopLeft),
        ("WATERMARK_TOP_RIGHT", WatermarkLocation::TopRight),
        ("WATERMARK_BOTTOM_LEFT", WatermarkLocation::BottomLeft),
        ("WATERMARK_BOTTOM_RIGHT", WatermarkLocation::BottomRight),
        ("WATERMARK_MIDDLE", WatermarkLocation::Middle),
        ("WATERMARK_ANIMATED", WatermarkLocation::Animated),
    ] {
        m.add(name, location.index())?;
    }
    Ok(())
}
