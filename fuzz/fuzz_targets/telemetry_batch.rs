//! Telemetry batches as an extension (and the telemetry recorder) reads them.
#![no_main]
use fnbox_extension::events::TelemetryEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = fnbox_extension::extension::parse_batch(data) {
        for raw in events {
            let typed: TelemetryEvent = serde_json::from_str(raw.get())
                .unwrap_or(TelemetryEvent::Other(serde_json::Value::Null));
            let _ = (typed.name().len(), typed.start_time());
            if let Ok(v) = serde_json::from_str(raw.get()) {
                let e = TelemetryEvent::from_value(v);
                let _ = (e.name().len(), e.start_time());
            }
        }
    }
});
