//! Function references from the front door's paths: FunctionGraph URNs (every short form),
//! Lambda names, ARNs and qualifiers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Option<&str>)| {
    let (raw, qualifier) = input;
    let _ = fnbox_serve::urn::parse_fg_urn(raw);
    let _ = fnbox_serve::urn::parse_lambda_name(raw, qualifier);
});
