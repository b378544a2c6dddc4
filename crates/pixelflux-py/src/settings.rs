//! `CaptureSettings`: 1.2.2's settings object, with typed, range-checked properties.
//!
//! Every assignment is checked at once, so a wrong value fails where it is written: a wrong
//! type raises `TypeError`, an out-of-range value `ValueError`, both naming the field.
//! `start_capture` checks the whole set again with the core's `validate()`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use pixelflux::settings::{FieldKind, FieldValue};
use pixelflux::{CaptureSettings, Scene, SourceSpec, WireFormat};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyString};

/// The fields Python sees: the core's table in its order (1.2.2's, then ours) with 1.2.2's
/// spelling of the watermark location, less `wire_format` (Python always speaks 1.2.2's),
/// `paint_over_lossless` and `scroll_detection` (stills and copy-rows need the tagged wire
/// format) and the 2.x rate-control names (`api2::CORE_NAMES`, reached through
/// `__getattr__`), plus `display` and `scene`.
pub(crate) fn python_fields() -> &'static [&'static str] {
    static FIELDS: OnceLock<Vec<&'static str>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        CaptureSettings::field_names()
            .filter(|&f| {
                !matches!(
                    f,
                    "wire_format" | "paint_over_lossless" | "scroll_detection"
                )
            })
            // The 2.x rate-control names are core fields too, but not 1.2.2's.
            .filter(|f| !crate::api2::CORE_NAMES.contains(f))
            .map(|f| match f {
                "watermark_location" => "watermark_location_enum",
                other => other,
            })
            .chain(["display", "scene"])
            .collect()
    })
}

/// The core's name for a Python field (1.2.2 spelled the watermark location with `_enum`).
fn core_name(field: &str) -> &str {
    match field {
        "watermark_location_enum" => "watermark_location",
        other => other,
    }
}

/// The Python type name of `value`, for "must be a ..., not X" errors (`?` when it has none).
pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// An integer: `int` and objects with `__index__`, not `bool`/`float`. Its range is the
/// core's to check ([`CaptureSettings::set_field`]); one that does not fit in 64 bits is out of
/// every field's range.
fn int_value(field: &str, value: &Bound<'_, PyAny>) -> PyResult<i64> {
    let wrong_type =
        || PyTypeError::new_err(format!("{field} must be an int, not {}", type_name(value)));
    if value.is_instance_of::<PyBool>() || value.is_instance_of::<PyFloat>() {
        return Err(wrong_type());
    }
    match value.extract::<i64>() {
        Ok(n) => Ok(n),
        Err(e) if e.is_instance_of::<PyTypeError>(value.py()) => Err(wrong_type()),
        Err(_) => Err(PyValueError::new_err(format!(
            "invalid setting `{field}`: {} is out of range",
            value
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "?".into())
        ))),
    }
}

/// A number (`float` or `int`, not `bool`).
fn float_value(field: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    let wrong_type = || {
        PyTypeError::new_err(format!(
            "{field} must be a number, not {}",
            type_name(value)
        ))
    };
    if value.is_instance_of::<PyBool>() {
        return Err(wrong_type());
    }
    value.extract().map_err(|_| wrong_type())
}

/// A flag: `True`/`False`, or the integers 0 and 1 (C-style code written for 1.2.2).
fn flag(field: &str, value: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(b) = value.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    let wrong_type =
        || PyTypeError::new_err(format!("{field} must be a bool, not {}", type_name(value)));
    if value.is_instance_of::<PyFloat>() {
        return Err(wrong_type());
    }
    match value.extract::<i64>() {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        Err(e) if e.is_instance_of::<PyTypeError>(value.py()) => Err(wrong_type()),
        _ => Err(PyValueError::new_err(format!(
            "{field} must be True or False (or 0 or 1), got {}",
            value
                .str()
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "?".into())
        ))),
    }
}

/// `None`, `str`, `bytes` or `os.PathLike`; an empty path means none (as in 1.2.2).
fn path_or_none(field: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<PathBuf>> {
    if value.is_none() {
        return Ok(None);
    }
    let wrong_type = || {
        PyTypeError::new_err(format!(
            "{field} must be str, bytes, os.PathLike or None, not {}",
            type_name(value)
        ))
    };
    let fspath = if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() {
        value.clone()
    } else {
        let os = value.py().import("os")?;
        os.getattr("fspath")?
            .call1((value,))
            .map_err(|_| wrong_type())?
    };
    let path = if let Ok(s) = fspath.cast::<PyString>() {
        // Surrogate escapes (undecodable file names) round-trip through os.fsencode.
        let os = value.py().import("os")?;
        let raw = os.getattr("fsencode")?.call1((s,))?;
        bytes_to_path(raw.cast::<PyBytes>().map_err(|_| wrong_type())?.as_bytes())
    } else if let Ok(b) = fspath.cast::<PyBytes>() {
        bytes_to_path(b.as_bytes())
    } else {
        return Err(wrong_type());
    };
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(PyValueError::new_err(format!(
            "{field} must not contain a NUL byte"
        )));
    }
    Ok(Some(path))
}

fn bytes_to_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// The settings of a capture: every field of pixelflux 1.2.2 with its default, plus our
/// `stripe_height`, `display` and `scene`.
#[pyclass(name = "CaptureSettings", module = "pixelflux")]
#[derive(Clone)]
pub(crate) struct PyCaptureSettings {
    pub(crate) core: CaptureSettings,
    /// X display to capture (`None`: `$DISPLAY`).
    pub(crate) display: Option<String>,
    /// Capture a built-in synthetic scene instead of the X display (for tests and demos).
    pub(crate) scene: Option<Scene>,
    /// The pixelflux 2.x settings without a 1.2.2 counterpart (see `api2`).
    pub(crate) extra: crate::api2::Extra,
}

impl PyCaptureSettings {
    /// Checks and stores one field; the single place where values are accepted. The Python
    /// types are checked here; the values by the core's field table (`set_field`), whose
    /// error becomes a `ValueError` naming the field.
    pub(crate) fn assign(&mut self, field: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        match field {
            // A name in Python (the core's table keeps its index).
            "jpeg_subsampling" => {
                let name = value.cast::<PyString>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "jpeg_subsampling must be a str, not {}",
                        type_name(value)
                    ))
                })?;
                self.core.jpeg_subsampling = name
                    .to_str()?
                    .parse()
                    .map_err(|e: pixelflux::SettingsError| PyValueError::new_err(e.to_string()))?;
                return Ok(());
            }
            "display" => {
                self.display = if value.is_none() {
                    None
                } else {
                    let name = value.cast::<PyString>().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "display must be a str or None, not {}",
                            type_name(value)
                        ))
                    })?;
                    let name = name.to_str()?;
                    pixelflux::source::x11::check_display_name(Some(name))
                        .map_err(|e| PyValueError::new_err(e.to_string()))?;
                    Some(name.to_owned())
                };
                return Ok(());
            }
            "scene" => {
                self.scene = if value.is_none() {
                    None
                } else {
                    let name = value.cast::<PyString>().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "scene must be a str or None, not {}",
                            type_name(value)
                        ))
                    })?;
                    let name = name.to_str()?;
                    Some(Scene::from_str(name).map_err(|_| {
                        let names: Vec<&str> = Scene::ALL.iter().map(|s| s.name()).collect();
                        PyValueError::new_err(format!(
                            "scene must be one of {names:?} or None, got {name:?}"
                        ))
                    })?)
                };
                return Ok(());
            }
            _ => {}
        }
        if !python_fields().contains(&field) && !crate::api2::CORE_NAMES.contains(&field) {
            // 2.x names; AttributeError for a name neither API has.
            return crate::api2::assign(self, field, value);
        }
        let core_field = core_name(field);
        let kind = CaptureSettings::field_kind(core_field).ok_or_else(|| {
            PyTypeError::new_err(format!("CaptureSettings has no field {field:?}"))
        })?;
        let parsed = match kind {
            FieldKind::Int => FieldValue::Int(int_value(field, value)?),
            FieldKind::Float => FieldValue::Float(float_value(field, value)?),
            FieldKind::Bool => FieldValue::Bool(flag(field, value)?),
            FieldKind::Path => FieldValue::Path(path_or_none(field, value)?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "CaptureSettings field {field:?} has a type Python cannot set"
                )))
            }
        };
        // 1.2.2 accepted JPEG quality 0 (libjpeg clamps it to 1): kept as 0, checked as 1,
        // sent to the core as 1 by `to_core`.
        let zero_quality = matches!(core_field, "jpeg_quality" | "paint_over_jpeg_quality")
            && parsed == FieldValue::Int(0);
        let checked = if zero_quality {
            FieldValue::Int(1)
        } else {
            parsed
        };
        self.core
            .set_field(core_field, checked)
            .map_err(|e| PyValueError::new_err(e.to_string().replace(core_field, field)))?;
        if zero_quality {
            match core_field {
                "jpeg_quality" => self.core.jpeg_quality = 0,
                _ => self.core.paint_over_jpeg_quality = 0,
            }
        }
        Ok(())
    }

    /// The core settings a capture runs with, checked as a whole.
    pub(crate) fn to_core(&self) -> PyResult<CaptureSettings> {
        let mut core = self.core.clone();
        core.jpeg_quality = core.jpeg_quality.max(1);
        core.paint_over_jpeg_quality = core.paint_over_jpeg_quality.max(1);
        // The Python API always speaks 1.2.2's wire format.
        core.wire_format = WireFormat::Compat;
        core.validate()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(core)
    }

    /// Where the frames come from.
    pub(crate) fn source(&self) -> SourceSpec {
        match self.scene {
            Some(scene) => SourceSpec::Synthetic(scene),
            None => SourceSpec::X11 {
                display: self.display.clone(),
            },
        }
    }

    pub(crate) fn value<'py>(&self, py: Python<'py>, field: &str) -> PyResult<Bound<'py, PyAny>> {
        match field {
            "display" => return Ok(self.display.clone().into_pyobject(py)?.into_any()),
            "scene" => return Ok(self.scene.map(|s| s.name()).into_pyobject(py)?.into_any()),
            "jpeg_subsampling" => {
                return Ok(self
                    .core
                    .jpeg_subsampling
                    .name()
                    .into_pyobject(py)?
                    .into_any())
            }
            _ => {}
        }
        if !python_fields().contains(&field) && !crate::api2::CORE_NAMES.contains(&field) {
            return crate::api2::value(self, py, field);
        }
        let value = self.core.field(core_name(field)).ok_or_else(|| {
            PyTypeError::new_err(format!("CaptureSettings has no field {field:?}"))
        })?;
        Ok(match value {
            FieldValue::Int(v) => v.into_pyobject(py)?.into_any(),
            FieldValue::Float(v) => v.into_pyobject(py)?.into_any(),
            FieldValue::Bool(v) => PyBool::new(py, v).to_owned().into_any(),
            FieldValue::Path(None) => py.None().into_bound(py),
            FieldValue::Path(Some(path)) => {
                use std::os::unix::ffi::OsStrExt;
                let raw = PyBytes::new(py, path.as_os_str().as_bytes());
                py.import("os")?.getattr("fsdecode")?.call1((raw,))?
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "CaptureSettings field {field:?} has a type Python cannot read"
                )))
            }
        })
    }
}

/// Generates the typed property pairs; all go through `assign`/`value`.
/// (`#[pymethods]` may appear once per class, so the other methods are passed in too.)
macro_rules! properties {
    (methods { $($methods:tt)* } $($field:ident => $get:ident, $set:ident, $doc:literal;)*) => {
        #[pymethods]
        impl PyCaptureSettings {
            $($methods)*
            $(
                #[doc = $doc]
                #[getter]
                fn $get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    self.value(py, stringify!($field))
                }

                #[setter]
                fn $set(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
                    self.assign(stringify!($field), value)
                }
            )*
        }
    };
}

properties! {
    methods {
        /// `CaptureSettings()` has 1.2.2's defaults; keyword arguments (ours) set fields.
        #[new]
        // pyo3 writes no text signature for a bare `**kwargs`; give `inspect` one.
        #[pyo3(signature = (**fields), text_signature = "(**fields)")]
        fn new(fields: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
            let mut settings = Self {
                core: CaptureSettings::default(),
                display: None,
                scene: None,
                extra: crate::api2::Extra::default(),
            };
            if let Some(fields) = fields {
                for (name, value) in fields.iter() {
                    let name: String = name.extract()?;
                    if !python_fields().contains(&name.as_str())
                        && !crate::api2::v2_names().contains(&name.as_str())
                    {
                        return Err(PyTypeError::new_err(format!(
                            "CaptureSettings() got an unexpected keyword argument {name:?}"
                        )));
                    }
                    settings.assign(&name, &value)?;
                }
            }
            Ok(settings)
        }

        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            let mut parts = Vec::with_capacity(python_fields().len());
            for field in python_fields() {
                parts.push(format!("{field}={}", self.value(py, field)?.repr()?));
            }
            Ok(format!("CaptureSettings({})", parts.join(", ")))
        }

        fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
            match other.cast::<PyCaptureSettings>() {
                Ok(other) => {
                    let other = other.borrow();
                    self.core == other.core
                        && self.display == other.display
                        && self.scene == other.scene
                        && self.extra == other.extra
                }
                Err(_) => false,
            }
        }

        /// Reads a pixelflux 2.x name (`video_crf`, `codec`, `use_cpu`, ...); AttributeError
        /// for a name neither API has.
        fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
            crate::api2::value(self, py, name)
        }

        /// Every assignment, 1.2.2 and 2.x names alike, is checked by `assign`;
        /// AttributeError for a name neither API has.
        fn __setattr__(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
            self.assign(name, value)
        }

        fn __copy__(&self) -> Self {
            self.clone()
        }

        fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
            self.clone()
        }
    }
    capture_width => get_capture_width, set_capture_width, "Width of the captured region in pixels, 1..=16384 (default 1920).";
    capture_height => get_capture_height, set_capture_height, "Height of the captured region in pixels, 1..=16384 (default 1080).";
    capture_x => get_capture_x, set_capture_x, "Left edge of the region on the screen, >= 0 (default 0).";
    capture_y => get_capture_y, set_capture_y, "Top edge of the region on the screen, >= 0 (default 0).";
    target_fps => get_target_fps, set_target_fps, "Frames per second to aim for, 0.01..=1000 (default 60.0).";
    capture_cursor => get_capture_cursor, set_capture_cursor, "Draw the pointer into the frames (default False).";
    output_mode => get_output_mode, set_output_mode, "0 JPEG, 1 H.264 (default 0).";
    jpeg_quality => get_jpeg_quality, set_jpeg_quality, "JPEG quality of changing stripes, 0..=100; 0 acts as 1 (default 85).";
    paint_over_jpeg_quality => get_paint_over_jpeg_quality, set_paint_over_jpeg_quality, "JPEG quality of paint-over refreshes, 0..=100 (default 95).";
    use_paint_over_quality => get_use_paint_over_quality, set_use_paint_over_quality, "Re-send a static stripe once at higher quality (default False).";
    paint_over_trigger_frames => get_paint_over_trigger_frames, set_paint_over_trigger_frames, "Static frames before a paint-over, >= 1 (default 10).";
    damage_block_threshold => get_damage_block_threshold, set_damage_block_threshold, "Consecutive changed frames that make a stripe \"damaged\" (default 15).";
    damage_block_duration => get_damage_block_duration, set_damage_block_duration, "Frames a damaged stripe is sent without hashing (default 30).";
    h264_crf => get_h264_crf, set_h264_crf, "H.264 constant rate factor, 0..=51, lower is better (default 25); 0 needs h264_fullcolor.";
    h264_fullcolor => get_h264_fullcolor, set_h264_fullcolor, "H.264 in 4:4:4 (High 4:4:4) instead of 4:2:0 (default False).";
    h264_fullframe => get_h264_fullframe, set_h264_fullframe, "H.264 of whole frames instead of stripes (default False).";
    watermark_path => get_watermark_path, set_watermark_path, "PNG burnt into every frame: str, bytes, os.PathLike or None (default None).";
    watermark_location_enum => get_watermark_location_enum, set_watermark_location_enum, "0 none, 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right, 5 middle, 6 animated.";
    vaapi_render_node_index => get_vaapi_render_node_index, set_vaapi_render_node_index, "Accepted for compatibility; encoding is always in software (default -1).";
    stripe_height => get_stripe_height, set_stripe_height, "Rows per stripe (ours): 0 (default) picks per codec, 64 for JPEG and for H.264 one stripe per core of at least 256 rows; else even, >= 16.";
    display => get_display, set_display, "X display to capture, such as \":1\" (ours; default None: $DISPLAY).";
    jpeg_subsampling => get_jpeg_subsampling, set_jpeg_subsampling, "JPEG chroma (ours): \"auto\" (default: 4:4:4 from quality 90 or for stripes with coloured detail, else 4:2:0 two quality steps higher; a stripe with no colour as a one-component grayscale JPEG of the same pixels), \"420\" or \"444\" (three components; 1.2.2 always used 4:4:4).";
    scene => get_scene, set_scene, "A synthetic scene to capture instead of the screen: static, typing, scroll, video, full, desktop (ours).";
}
