//! HTTP functions: an invocation's event (APIG-shaped or not) → the request to port 8000.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = fnbox_fg::http_bridge::build_request(data, "req-1", &[]) {
        // A built request is one hyper can send: a path-and-query starting with '/'.
        let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        assert!(pq.starts_with('/'), "{pq}");
    }
});
