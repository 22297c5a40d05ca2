//! Lambda's Runtime, Extensions and Telemetry APIs as a hostile runtime or extension calls
//! them: up to four arbitrary requests per run.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|calls: Vec<fnbox_fuzz::Call>| {
    fnbox_fuzz::run_calls(fnbox_fuzz::Which::Lambda, &calls);
});
