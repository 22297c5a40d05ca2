//! function.yaml / function.json text → a validated config or an error naming the field.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for origin in ["function.yaml", "function.json"] {
        if let Err(e) = fnbox_package::parse_config(text, Path::new(origin), "fuzzed") {
            let _ = e.to_string();
        }
    }
});
