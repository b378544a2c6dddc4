//! The pixelflux 2.x surface beside 1.2.2's: the 2.x `CaptureSettings` names, the
//! hardware/Wayland settings that fall back to software on X11, `stream_info()`, and the
//! module-level functions Selkies 2.1.0 reads (software/hardware encoder tables, the Wayland
//! probes, which answer as 2.2.1's do where no compositor runs).
//!
//! Names and defaults were read from the pixelflux 2.2.1 wheel (`CaptureSettings()` there).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use pixelflux::StreamFormat;
use pyo3::exceptions::{PyAttributeError, PyFileNotFoundError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::settings::{type_name, PyCaptureSettings};

/// 2.x names for a 1.2.2 field: one value under two names.
pub(crate) const ALIASES: [(&str, &str); 3] = [
    ("video_crf", "h264_crf"),
    ("video_fullcolor", "h264_fullcolor"),
    ("video_fullframe", "h264_fullframe"),
];

/// 2.x names that are fields of the core's settings (rate control): checked and stored by the
/// core's field table like the 1.2.2 names, and applied by the capture.
pub(crate) const CORE_NAMES: [&str; 6] = [
    "video_cbr_mode",
    "video_bitrate_kbps",
    "video_vbv_multiplier",
    "video_min_qp",
    "video_max_qp",
    "keyframe_interval_s",
];

/// A stored 2.x-only setting.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string or None.
    Str(Option<String>),
    /// True, False or None.
    OptBool(Option<bool>),
}

/// The 2.x settings with no 1.2.2 counterpart and no core field, with 2.2.1's defaults. They
/// are accepted, stored and read back; what each does here is in docs/python.md ("pixelflux 2.x API").
fn defaults() -> [(&'static str, Value); 22] {
    use Value::*;
    [
        ("use_cpu", Bool(false)),
        ("cpu_encode_threading", Bool(true)),
        ("video_paintover_crf", Int(18)),
        ("video_paintover_burst_frames", Int(5)),
        ("video_streaming_mode", Bool(false)),
        ("video_bit_depth", Int(8)),
        ("video_reference_frames", Int(0)),
        ("cursor_size", Int(-1)),
        ("cursor_size_cap", Int(128)),
        ("scale", Float(1.0)),
        ("display_id", Int(0)),
        ("omit_stripe_headers", Bool(false)),
        ("acknowledge_references", Bool(false)),
        ("auto_adjust_screen_capture_size", Bool(false)),
        ("recording_socket", Str(None)),
        ("auto_gpu", Str(None)),
        ("encode_node_index", Int(-2)),
        ("encode_node_path", Str(None)),
        ("render_node_path", Str(None)),
        ("use_wayland", OptBool(None)),
        ("wayland_host_display", Str(None)),
        ("debug_logging", Bool(false)),
    ]
}

/// Every name `CaptureSettings` answers to in 2.x besides the 1.2.2 ones.
pub(crate) fn v2_names() -> Vec<&'static str> {
    let mut names = vec!["codec"];
    names.extend(ALIASES.iter().map(|(n, _)| *n));
    names.extend(CORE_NAMES);
    names.extend(defaults().iter().map(|(n, _)| *n));
    names
}

/// The 2.x-only settings of one `CaptureSettings`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Extra {
    values: Vec<(&'static str, Value)>,
}

impl Default for Extra {
    fn default() -> Self {
        Self {
            values: defaults().to_vec(),
        }
    }
}

impl Extra {
    fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(Value::Bool(true)))
    }

    pub(crate) fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }

    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Str(Some(s))) if !s.is_empty() => Some(s),
            _ => None,
        }
    }
}

/// Checks `value` against the kind of `old` and returns the new value.
fn convert(name: &str, old: &Value, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    let wrong = |what: &str| {
        PyTypeError::new_err(format!("{name} must be {what}, not {}", type_name(value)))
    };
    Ok(match old {
        Value::Bool(_) => {
            if let Ok(b) = value.cast::<PyBool>() {
                Value::Bool(b.is_true())
            } else if value.is_instance_of::<PyInt>() {
                match value.extract::<i64>()? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    _ => {
                        return Err(PyValueError::new_err(format!(
                            "{name} must be True or False"
                        )))
                    }
                }
            } else {
                return Err(wrong("a bool"));
            }
        }
        Value::OptBool(_) => {
            if value.is_none() {
                Value::OptBool(None)
            } else if let Ok(b) = value.cast::<PyBool>() {
                Value::OptBool(Some(b.is_true()))
            } else {
                return Err(wrong("True, False or None"));
            }
        }
        Value::Int(_) => {
            if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
                return Err(wrong("an int"));
            }
            let i: i64 = value
                .extract()
                .map_err(|_| PyValueError::new_err(format!("{name} is out of range")))?;
            let ok = match name {
                "video_paintover_crf" => (0..=51).contains(&i),
                "video_bit_depth" => i == 8 || i == 10,
                "video_paintover_burst_frames" | "video_reference_frames" | "display_id" => i >= 0,
                _ => true,
            };
            if !ok {
                return Err(PyValueError::new_err(format!(
                    "{name}: {i} is out of range"
                )));
            }
            Value::Int(i)
        }
        Value::Float(_) => {
            if value.is_instance_of::<PyBool>()
                || !(value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>())
            {
                return Err(wrong("a number"));
            }
            let f: f64 = value.extract()?;
            if !f.is_finite() || f < 0.0 || (name == "scale" && f <= 0.0) {
                return Err(PyValueError::new_err(format!(
                    "{name}: {f} is out of range"
                )));
            }
            Value::Float(f)
        }
        Value::Str(_) => {
            if value.is_none() {
                Value::Str(None)
            } else if let Ok(s) = value.cast::<PyString>() {
                Value::Str(Some(s.to_str()?.to_owned()))
            } else if name == "auto_gpu" && value.is_instance_of::<PyBool>() {
                // Truthy strings mean "the first GPU"; a bool is taken the same way.
                Value::Str(value.is_truthy()?.then(|| "true".to_owned()))
            } else {
                return Err(wrong("a str or None"));
            }
        }
    })
}

/// Assigns a 2.x name (the 1.2.2 names are handled by `PyCaptureSettings::assign`).
/// Raises `AttributeError` for a name neither API has.
pub(crate) fn assign(
    settings: &mut PyCaptureSettings,
    name: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if let Some((_, target)) = ALIASES.iter().find(|(n, _)| *n == name) {
        // The error names the field as the caller wrote it.
        return settings.assign(target, value).map_err(|e| {
            let py = value.py();
            let message = e.value(py).to_string().replace(target, name);
            if e.is_instance_of::<PyTypeError>(py) {
                PyTypeError::new_err(message)
            } else {
                PyValueError::new_err(message)
            }
        });
    }
    if name == "codec" {
        let codec = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!("codec must be a str, not {}", type_name(value)))
        })?;
        let mode = match codec.to_str()? {
            "jpeg" => 0_i64,
            "h264" => 1,
            other => {
                return Err(PyValueError::new_err(format!(
                    "codec {other:?} is not available in this build: use \"jpeg\" or \"h264\" \
                     (see SOFTWARE_ENCODERS)"
                )))
            }
        };
        return settings.assign("output_mode", &mode.into_pyobject(value.py())?.into_any());
    }
    let Some(slot) = settings.extra.values.iter_mut().find(|(n, _)| *n == name) else {
        return Err(PyAttributeError::new_err(format!(
            "CaptureSettings has no setting {name:?} (neither pixelflux 1.2.2 nor 2.x has it)"
        )));
    };
    slot.1 = convert(name, &slot.1, value)?;
    Ok(())
}

/// Reads a 2.x name; `AttributeError` for a name neither API has.
pub(crate) fn value<'py>(
    settings: &PyCaptureSettings,
    py: Python<'py>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    if let Some((_, target)) = ALIASES.iter().find(|(n, _)| *n == name) {
        return settings.value(py, target);
    }
    if CORE_NAMES.contains(&name) {
        return settings.value(py, name);
    }
    if name == "codec" {
        let codec = if settings.core.output_mode.index() == 0 {
            "jpeg"
        } else {
            "h264"
        };
        return Ok(PyString::new(py, codec).into_any());
    }
    let Some(v) = settings.extra.get(name) else {
        return Err(PyAttributeError::new_err(format!(
            "'CaptureSettings' object has no attribute {name:?}"
        )));
    };
    Ok(match v {
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Str(s) => s.clone().into_pyobject(py)?.into_any(),
        Value::OptBool(b) => b.into_pyobject(py)?.into_any(),
    })
}

static HARDWARE_WARNED: AtomicBool = AtomicBool::new(false);

/// Checks the hardware/Wayland settings before a 2.x start: a named device that does not
/// exist is an error; any other request for hardware or Wayland falls back to the software
/// encoders on X11 with one warning per process (logger "pixelflux").
pub(crate) fn check_hardware(py: Python<'_>, extra: &Extra) -> PyResult<()> {
    for field in ["encode_node_path", "render_node_path"] {
        if let Some(path) = extra.str(field) {
            if !Path::new(path).exists() {
                return Err(PyFileNotFoundError::new_err(format!(
                    "{field}: no such device: {path}"
                )));
            }
        }
    }
    let index = extra.int("encode_node_index");
    if index >= 0 {
        let node = format!("/dev/dri/renderD{}", 128 + index);
        if !Path::new(&node).exists() {
            return Err(PyFileNotFoundError::new_err(format!(
                "encode_node_index={index}: no such device: {node}"
            )));
        }
    }
    let mut asked = Vec::new();
    if !extra.bool("use_cpu") {
        asked.push("use_cpu=False");
    }
    if extra.str("auto_gpu").is_some() {
        asked.push("auto_gpu");
    }
    if index >= 0 {
        asked.push("encode_node_index");
    }
    for field in [
        "encode_node_path",
        "render_node_path",
        "wayland_host_display",
    ] {
        if extra.str(field).is_some() {
            asked.push(field);
        }
    }
    if matches!(extra.get("use_wayland"), Some(Value::OptBool(Some(true)))) {
        asked.push("use_wayland=True");
    }
    if extra.int("video_bit_depth") == 10 {
        asked.push("video_bit_depth=10");
    }
    if !asked.is_empty() && !HARDWARE_WARNED.swap(true, Ordering::AcqRel) {
        let message = format!(
            "{} asked for: this build encodes in software (libjpeg-turbo, x264, 8-bit) on \
             X11; continuing with those",
            asked.join(", ")
        );
        let logged = py
            .import("logging")
            .and_then(|l| l.getattr("getLogger")?.call1(("pixelflux",)))
            .and_then(|logger| logger.call_method1("warning", (message,)));
        if let Err(e) = logged {
            e.write_unraisable(py, None);
        }
    }
    Ok(())
}

/// `stream_info()`'s dict for a running capture, with 2.2.1's keys.
pub(crate) fn stream_info<'py>(
    py: Python<'py>,
    format: &StreamFormat,
    shm: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let h264 = format.codec.index() == 1;
    d.set_item("backend", "x11")?;
    d.set_item("capture", if shm { "XShm" } else { "synthetic" })?;
    d.set_item("zero_copy", false)?;
    d.set_item("zero_copy_available", false)?;
    d.set_item(
        "capture_reason",
        "zero-copy capture is not implemented in this build",
    )?;
    d.set_item("encoder", if h264 { "x264" } else { "turbojpeg" })?;
    d.set_item("hardware", false)?;
    d.set_item(
        "encoder_reason",
        if h264 {
            "software encoding only in this build"
        } else {
            ""
        },
    )?;
    d.set_item("codec", if h264 { "h264" } else { "jpeg" })?;
    d.set_item("fullcolor", h264 && format.h264_fullcolor)?;
    d.set_item("bit_depth", 8)?;
    d.set_item("full_range", false)?;
    d.set_item("striped", format.stripe_height < format.height)?;
    d.set_item("gpu", "")?;
    d.set_item("driver", "")?;
    d.set_item("encode_node", "")?;
    Ok(d)
}

/// Registers the 2.x module-level names.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let encoders = PyDict::new(py);
    encoders.set_item("h264", "x264")?;
    m.add("SOFTWARE_ENCODERS", encoders)?;
    let formats = PyDict::new(py);
    formats.set_item("h264", PyList::new(py, ["420-8", "444-8"])?)?;
    m.add("SOFTWARE_FORMATS", formats)?;
    m.add("SOFTWARE_FULLCOLOR", PyList::new(py, ["h264"])?)?;
    m.add_function(wrap_pyfunction!(hardware_encoders, m)?)?;
    m.add_function(wrap_pyfunction!(hardware_formats, m)?)?;
    m.add_function(wrap_pyfunction!(hardware_fullcolor, m)?)?;
    m.add_function(wrap_pyfunction!(get_wayland_display_name, m)?)?;
    m.add_function(wrap_pyfunction!(probe_wayland_gpu, m)?)?;
    m.add_function(wrap_pyfunction!(ensure_wayland_display, m)?)?;
    Ok(())
}

/// The hardware encoder of each codec on an encode node: none in this build (`{}`, as
/// 2.2.1 answers where no GPU serves).
#[pyfunction]
#[pyo3(signature = (encode_node_index = -2, auto_gpu = ""))]
fn hardware_encoders<'py>(
    py: Python<'py>,
    encode_node_index: i64,
    auto_gpu: &str,
) -> Bound<'py, PyDict> {
    let _ = (encode_node_index, auto_gpu);
    PyDict::new(py)
}

/// The formats each hardware encoder takes: none in this build (`{}`).
#[pyfunction]
#[pyo3(signature = (encode_node_index = -2, auto_gpu = ""))]
fn hardware_formats<'py>(
    py: Python<'py>,
    encode_node_index: i64,
    auto_gpu: &str,
) -> Bound<'py, PyDict> {
    let _ = (encode_node_index, auto_gpu);
    PyDict::new(py)
}

/// The codecs hardware encodes 4:4:4: none in this build (`[]`).
#[pyfunction]
#[pyo3(signature = (encode_node_index = -2, auto_gpu = ""))]
fn hardware_fullcolor<'py>(
    py: Python<'py>,
    encode_node_index: i64,
    auto_gpu: &str,
) -> Bound<'py, PyList> {
    let _ = (encode_node_index, auto_gpu);
    PyList::empty(py)
}

/// The running compositor's Wayland socket name: always None (this build has no Wayland
/// compositor), as 2.2.1 answers before one is started.
#[pyfunction]
fn get_wayland_display_name() -> Option<String> {
    None
}

/// Whether a Wayland session would be hardware accelerated: never here. The dict has 2.2.1's
/// keys (`node`, `accelerated`, `gpu`, `renderer`, `error`).
#[pyfunction]
#[pyo3(signature = (render_node = "", auto_gpu = ""))]
fn probe_wayland_gpu<'py>(
    py: Python<'py>,
    render_node: &str,
    auto_gpu: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let _ = auto_gpu;
    let d = PyDict::new(py);
    d.set_item("node", render_node)?;
    d.set_item("accelerated", false)?;
    d.set_item("gpu", false)?;
    d.set_item("renderer", "")?;
    d.set_item("error", "this pixelflux build has no Wayland compositor")?;
    Ok(d)
}

/// Brings a Wayland compositor up: this build has none, so it returns `""`, 2.2.1's answer
/// when the socket did not come up.
#[pyfunction]
#[pyo3(signature = (width = 0, height = 0, render_node = "", auto_gpu = "", cursor_size = 0))]
fn ensure_wayland_display(
    width: i64,
    height: i64,
    render_node: &str,
    auto_gpu: &str,
    cursor_size: i64,
) -> String {
    let _ = (width, height, render_node, auto_gpu, cursor_size);
    String::new()
}
