//! Any string as `--region WxH+X+Y`: parsing never panics, and an accepted region is not
//! empty and prints back to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixelflux_fuzz::options::RegionArg;

fuzz_target!(|s: &str| {
    if let Ok(r) = s.parse::<RegionArg>() {
        assert!(r.width > 0 && r.height > 0);
        let again: RegionArg = format!("{}x{}+{}+{}", r.width, r.height, r.x, r.y)
            .parse()
            .expect("a printed region parses");
        assert_eq!(again, r);
    }
});
