//! FunctionGraph's documented log lines, for byte-for-byte checks apart from ids, times and
//! figures: [`shape`] masks a line's request id and every number, so a line fnbox printed and
//! the documented one compare equal exactly when everything else is the same.
//!
//! The documented lines are quoted from Open Telekom Cloud's FunctionGraph developer guide
//! (`opentelekomcloud-community/otc-functiongraph-python-runtime`,
//! `doc/source/devguide/invoke/invoke_api.rst`, "Sample output of synchronous invocation").

/// The request id of the documented example.
pub const DOC_REQUEST_ID: &str = "960d089c-c812-4fe7-9997-a72f773e4bcb";

/// The documented `Start invoke request` line.
pub const DOC_START: &str =
    "2026-03-17T10:13:22Z Start invoke request '960d089c-c812-4fe7-9997-a72f773e4bcb', version: latest";

/// A documented context-logger line.
pub const DOC_LOGGER_INFO: &str =
    "2026-03-17T10:13:22Z 960d089c-c812-4fe7-9997-a72f773e4bcb INFO Key value from event: Hello World";

/// The documented `Finish invoke request` line.
pub const DOC_FINISH: &str = "2026-03-17T10:13:22Z Finish invoke request '960d089c-c812-4fe7-9997-a72f773e4bcb', duration: 2.049ms, billing duration: 3ms, memory used: 36.535MB, billing memory: 128MB, cpu used: 0.300U, storage used: 0.039MB";

/// `line` with `request_id` replaced by `<id>` and every run of digits by `#` (so `2.049ms`
/// becomes `#.#ms`: the number of decimals is not masked, nor is a time's precision).
pub fn shape(line: &str, request_id: &str) -> String {
    let line = if request_id.is_empty() {
        line.to_string()
    } else {
        line.replace(request_id, "<id>")
    };
    let mut out = String::with_capacity(line.len());
    let mut in_number = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// The documented logger line with its level and message replaced (the shape a logger line of
/// another message must have).
pub fn doc_logger_line(level: &str, message: &str) -> String {
    let prefix: String = DOC_LOGGER_INFO
        .split(" INFO ")
        .next()
        .unwrap_or_default()
        .into();
    format!("{prefix} {level} {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_mask_ids_and_figures_only() {
        assert_eq!(
            shape(DOC_START, DOC_REQUEST_ID),
            "#-#-#T#:#:#Z Start invoke request '<id>', version: latest"
        );
        assert_eq!(
            shape(DOC_FINISH, DOC_REQUEST_ID),
            "#-#-#T#:#:#Z Finish invoke request '<id>', duration: #.#ms, billing duration: #ms, memory used: #.#MB, billing memory: #MB, cpu used: #.#U, storage used: #.#MB"
        );
        // Milliseconds in the time change the shape.
        assert_ne!(
            shape("2026-03-17T10:13:22.123Z x", ""),
            shape("2026-03-17T10:13:22Z x", "")
        );
        assert_eq!(
            doc_logger_line("WARN", "m"),
            "2026-03-17T10:13:22Z 960d089c-c812-4fe7-9997-a72f773e4bcb WARN m"
        );
    }
}
