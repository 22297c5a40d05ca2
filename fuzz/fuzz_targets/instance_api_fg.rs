//! The FunctionGraph instance API (runtime, extension register, telemetry subscribe) as a
//! hostile runtime or extension calls it: up to four arbitrary requests per run.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|calls: Vec<fnbox_fuzz::Call>| {
    fnbox_fuzz::run_calls(fnbox_fuzz::Which::FunctionGraph, &calls);
});
