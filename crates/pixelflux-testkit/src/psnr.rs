//! Picture distance: mean squared error and PSNR over 8-bit BGRX pixels.

/// Mean squared error over the B, G and R bytes of two BGRX buffers (the fourth byte of each
/// pixel is ignored; pixels past the shorter buffer are not compared); 0 when there are none.
pub fn mse_bgrx(a: &[u8], b: &[u8]) -> f64 {
    let mut se = 0u64;
    let mut n = 0u64;
    for (pa, pb) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = i32::from(pa[c]) - i32::from(pb[c]);
            se += d.unsigned_abs() as u64 * d.unsigned_abs() as u64;
        }
        n += 3;
    }
    if n == 0 {
        0.0
    } else {
        se as f64 / n as f64
    }
}

/// PSNR in dB of an 8-bit signal with this mean squared error (∞ for 0).
pub fn from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_matches_hand_computed_values() {
        let a = [100u8, 100, 100, 0, 100, 100, 100, 0];
        assert_eq!(from_mse(mse_bgrx(&a, &a)), f64::INFINITY);
        // Every colour byte off by 1: MSE 1, PSNR 20*log10(255) = 48.13 dB. The X byte differs
        // and must not count.
        let b = [101u8, 99, 101, 255, 99, 101, 99, 7];
        assert_eq!(mse_bgrx(&a, &b), 1.0);
        assert!((from_mse(1.0) - 48.1308).abs() < 1e-3);
        // One byte of six off by 6: MSE 36/6 = 6.
        let c = [106u8, 100, 100, 0, 100, 100, 100, 0];
        assert!((mse_bgrx(&a, &c) - 6.0).abs() < 1e-12);
        // Off by 255 everywhere: 0 dB.
        assert_eq!(from_mse(mse_bgrx(&[0, 0, 0, 0], &[255, 255, 255, 0])), 0.0);
        assert_eq!(mse_bgrx(&[], &[]), 0.0);
    }
}
