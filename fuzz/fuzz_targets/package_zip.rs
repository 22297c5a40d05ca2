//! A package .zip: safe extraction (no escape, no link outside, size and ratio limits), then its
//! function.yaml.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let zip = dir.path().join("pkg.zip");
    std::fs::write(&zip, data).expect("write zip");
    match fnbox_package::load(&zip) {
        Ok(pkg) => {
            // Whatever was extracted stays inside the package root.
            let root = pkg.root.canonicalize().expect("root exists");
            fnbox_fuzz::assert_inside(&root, &root);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
