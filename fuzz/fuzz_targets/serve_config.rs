//! The `fnbox serve` config file.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = fnbox_serve::ServeFile::parse(text, Path::new("/fuzz/fnbox.yaml")) {
        let _ = e.to_string();
    }
});
