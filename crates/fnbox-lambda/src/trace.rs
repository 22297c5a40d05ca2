//! The X-Ray trace header of an invocation. Lambda hands every runtime a
//! `Lambda-Runtime-Trace-Id` and every extension a `tracing` context; fnbox has no X-Ray, so it
//! derives a well-formed, unsampled header from the request id and the invocation's start, and
//! the runtime, the extensions and telemetry all see the same value.

use std::hash::{Hash, Hasher};

/// `Root=1-<start secs, 8 hex>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub fn trace_header(request_id: &str, start_epoch_secs: u64) -> String {
    let hex = id_hex(request_id);
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        start_epoch_secs & 0xffff_ffff,
        &hex[..24],
        &hex[16..32]
    )
}

/// The header for an invocation whose deadline and timeout are known (the runtime's and the
/// extensions' view: start = deadline − timeout).
pub fn trace_header_for_deadline(
    request_id: &str,
    deadline_epoch_ms: u64,
    timeout_secs: u32,
) -> String {
    let start_ms = deadline_epoch_ms.saturating_sub(u64::from(timeout_secs) * 1000);
    trace_header(request_id, start_ms / 1000)
}

/// 32 lowercase hex digits: the UUID's own when the id is a UUID, else a hash of it.
fn id_hex(request_id: &str) -> String {
    let simple: String = request_id
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if simple.len() == 32 && simple.bytes().all(|b| b.is_ascii_hexdigit()) {
        return simple;
    }
    let mut out = String::with_capacity(32);
    for salt in 0u8..2 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, request_id).hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_request_ids_shape_the_header() {
        let h = trace_header("8476a536-e9f4-11e8-9739-2dfe598c3fcd", 0x5bf4_2a1e);
        assert_eq!(
            h,
            "Root=1-5bf42a1e-8476a536e9f411e897392dfe;Parent=97392dfe598c3fcd;Sampled=0"
        );
    }

    #[test]
    fn other_ids_are_hashed_and_stable() {
        let a = trace_header("my-request", 1);
        assert_eq!(a, trace_header("my-request", 1));
        assert!(a.starts_with("Root=1-00000001-"), "{a}");
        assert_eq!(
            a.len(),
            "Root=1-00000001-".len() + 24 + ";Parent=".len() + 16 + ";Sampled=0".len()
        );
    }

    #[test]
    fn deadline_view_matches_the_start_view() {
        let start_ms = 1_700_000_123_456u64;
        assert_eq!(
            trace_header_for_deadline("r", start_ms + 3000, 3),
            trace_header("r", start_ms / 1000)
        );
    }
}
