//! The benchmark's results: per-scene figures, the table on stdout, the JSON file.

use serde::{Deserialize, Serialize};

/// Version of the JSON layout; bumped when a field changes meaning.
pub const JSON_VERSION: u32 = 1;

/// Milliseconds per captured frame spent in each pipeline stage (detect and encode summed over
/// the stripes, so CPU rather than wall time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageMs {
    pub grab: f64,
    pub overlay: f64,
    pub detect: f64,
    pub encode: f64,
    pub deliver: f64,
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Everything measured for one scene, codec and source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneResult {
    /// `static`, `typing`, `scroll`, `video` or `full`; or a real application: `app-terminal`,
    /// `app-clock`, `app-video`.
    pub scene: String,
    /// `jpeg` or `h264`.
    pub codec: String,
    /// `synthetic` (frames rendered in-process) or `x11` (Xvfb + scene driver).
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub target_fps: f64,
    /// Wall seconds the capture ran.
    pub seconds: f64,
    /// Frames grabbed.
    pub frames: u64,
    /// Frames of which at least one stripe was delivered.
    pub frames_sent: u64,
    pub stripes: u64,
    pub bytes: u64,
    /// Frames grabbed per second.
    pub capture_fps: f64,
    /// Frames with output per second (what a viewer sees update).
    pub delivered_fps: f64,
    pub stripes_per_frame: f64,
    pub kbit_per_s: f64,
    /// Process CPU milliseconds per grabbed frame (the driver and the PSNR copies excluded).
    pub cpu_ms_per_frame: f64,
    /// Process CPU seconds per wall second (1.0 = one core busy).
    pub cpu_cores: f64,
    /// X server CPU seconds per wall second during the run (x11 only; serves driver and grab).
    pub xserver_cpu_cores: Option<f64>,
    /// PSNR of the decoded stripes against the grabbed pixels: mean over the samples (from the
    /// mean MSE) and the worst sample, in dB; `None` when nothing could be compared.
    pub psnr_db: Option<f64>,
    pub psnr_min_db: Option<f64>,
    pub psnr_samples: usize,
    /// From grab to the end of the stripe's encode.
    pub encode_latency_ms: LatencyMs,
    /// From grab to the callback receiving the stripe.
    pub callback_latency_ms: LatencyMs,
    pub stage_ms_per_frame: StageMs,
    /// Ticks the capture fell behind its deadline.
    pub late_ticks: u64,
    /// Frames grabbed while the one before was still encoding (the capture pipelining).
    #[serde(default)]
    pub overlapped: u64,
    /// Frames the scene driver drew per second (x11 only).
    pub driver_fps: Option<f64>,
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc/cpuinfo` and `/proc/sys/kernel/osrelease`.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu_model,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// The JSON file `--json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub version: u32,
    pub tool: String,
    pub machine: Machine,
    /// The command line that produced it.
    pub command: String,
    pub results: Vec<SceneResult>,
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_infinite() => "inf".into(),
        Some(v) => format!("{v:.decimals$}"),
        None => "-".into(),
    }
}

/// The results as a fixed-width table.
pub fn table(results: &[SceneResult]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<12} {:<4} {:<9} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7}  {}\n",
        "scene",
        "cod",
        "source",
        "fps",
        "d.fps",
        "sent",
        "str/f",
        "kbit/s",
        "cpu ms/f",
        "cores",
        "psnr",
        "p50ms",
        "p99ms",
        "drv fps",
        "grab/ovl/det/enc/dlv ms per frame"
    ));
    for r in results {
        let s = r.stage_ms_per_frame;
        out.push_str(&format!(
            "{:<12} {:<4} {:<9} {:>6.1} {:>6.1} {:>6} {:>6.2} {:>9.0} {:>8.3} {:>6.3} {:>6} {:>6.2} {:>7.2} {:>7}  {:.2}/{:.2}/{:.2}/{:.2}/{:.2}\n",
            r.scene,
            r.codec,
            r.source,
            r.capture_fps,
            r.delivered_fps,
            r.frames_sent,
            r.stripes_per_frame,
            r.kbit_per_s,
            r.cpu_ms_per_frame,
            r.cpu_cores,
            opt(r.psnr_db, 1),
            r.callback_latency_ms.p50,
            r.callback_latency_ms.p99,
            opt(r.driver_fps, 1),
            s.grab,
            s.overlay,
            s.detect,
            s.encode,
            s.deliver
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SceneResult {
        SceneResult {
            scene: "typing".into(),
            codec: "jpeg".into(),
            source: "x11".into(),
            width: 1920,
            height: 1080,
            target_fps: 60.0,
            seconds: 5.0,
            frames: 300,
            frames_sent: 300,
            stripes: 310,
            bytes: 1_000_000,
            capture_fps: 60.0,
            delivered_fps: 60.0,
            stripes_per_frame: 1.03,
            kbit_per_s: 1600.0,
            cpu_ms_per_frame: 0.5,
            cpu_cores: 0.03,
            xserver_cpu_cores: Some(0.1),
            psnr_db: Some(f64::INFINITY),
            psnr_min_db: None,
            psnr_samples: 10,
            encode_latency_ms: LatencyMs::default(),
            callback_latency_ms: LatencyMs {
                p50: 1.0,
                p99: 2.0,
                max: 3.0,
            },
            stage_ms_per_frame: StageMs::default(),
            late_ticks: 0,
            overlapped: 0,
            driver_fps: Some(59.9),
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let report = BenchReport {
            version: JSON_VERSION,
            tool: "pixelflux bench".into(),
            machine: Machine::detect(),
            command: "pixelflux bench".into(),
            results: vec![sample()],
        };
        let v: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(v["version"], 1);
        assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
        let r = &v["results"][0];
        for key in [
            "scene",
            "codec",
            "source",
            "capture_fps",
            "delivered_fps",
            "stripes_per_frame",
            "kbit_per_s",
            "cpu_ms_per_frame",
            "cpu_cores",
            "psnr_db",
            "encode_latency_ms",
            "callback_latency_ms",
            "stage_ms_per_frame",
            "driver_fps",
        ] {
            assert!(r.get(key).is_some(), "missing {key}");
        }
        for stage in ["grab", "overlay", "detect", "encode", "deliver"] {
            assert!(r["stage_ms_per_frame"][stage].is_number());
        }
        assert_eq!(r["callback_latency_ms"]["p99"], 2.0);
        // JSON has no infinity: serde_json writes null, which reads back as None.
        assert!(r["psnr_db"].is_null());
        let back: BenchReport = serde_json::from_value(v).unwrap();
        assert_eq!(back.results[0].scene, "typing");
        assert_eq!(back.results[0].psnr_db, None);
    }

    #[test]
    fn table_has_a_row_per_result() {
        let t = table(&[sample(), sample()]);
        assert_eq!(t.lines().count(), 3);
        assert!(t
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("typing       jpeg x11"));
        assert!(t.contains("inf"));
    }
}
