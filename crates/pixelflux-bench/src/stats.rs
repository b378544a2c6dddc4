//! Pure helpers of the benchmark: percentiles, CPU and monotonic clocks, a PSNR summary.

use nix::time::{clock_gettime, ClockId};
use pixelflux_testkit::psnr::from_mse as psnr_from_mse;

/// The `p`-th percentile (0–100) of `values` by the nearest-rank method; `None` when empty.
/// Sorts a copy, so the caller's order is kept.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least p% of the values at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Arithmetic mean; `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// CPU seconds used by this whole process so far (every thread, live or ended).
///
/// `CLOCK_PROCESS_CPUTIME_ID` is the same quantity as utime + stime in `/proc/self/stat`, at
/// nanosecond instead of 10 ms resolution: a still screen costs a few ms per second, which the
/// tick counter cannot see.
pub fn process_cpu_seconds() -> f64 {
    clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) another process has used, from `/proc/PID/stat`; `None` when
/// it cannot be read.
pub fn process_cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may hold spaces: count fields after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI we build for.
    Some((utime + stime) / 100.0)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock Python's `time.monotonic_ns()` and upstream
/// pixelflux's `capture_ns` read, so timestamps of different processes line up.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Summary of a PSNR series: the mean of the per-sample MSEs turned back into dB (so one
/// perfect sample does not make the mean infinite), and the worst sample.
pub fn psnr_summary(mses: &[f64]) -> Option<(f64, f64)> {
    let avg = mean(mses)?;
    let worst = mses.iter().copied().fold(0.0, f64::max);
    Some((psnr_from_mse(avg), psnr_from_mse(worst)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        // Order of the input does not matter.
        let mut r = v.clone();
        r.reverse();
        assert_eq!(percentile(&r, 50.0), Some(50.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[f64::NAN], 50.0), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[]), None);
    }

    #[test]
    fn psnr_summary_averages_mses_first() {
        // One perfect sample does not make the mean infinite.
        let (avg, worst) = psnr_summary(&[0.0, 2.0]).unwrap();
        assert!((avg - psnr_from_mse(1.0)).abs() < 1e-12);
        assert!((worst - psnr_from_mse(2.0)).abs() < 1e-12);
        assert_eq!(psnr_summary(&[]), None);
    }

    #[test]
    fn clocks_advance() {
        let t0 = monotonic_ns();
        let c0 = process_cpu_seconds();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(monotonic_ns() > t0);
        assert!(process_cpu_seconds() > c0);
    }
}
