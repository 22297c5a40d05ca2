//! A subscriber's batching limits and their validation against Lambda's documented ranges.

use std::time::Duration;

use thiserror::Error;

/// Default `maxItems`. The contract (§5) says 1000; Lambda's own default is 10 000, but the
/// contract wins and 1000 is also what the FunctionGraph document implies.
pub const DEFAULT_MAX_ITEMS: usize = 1000;
/// Default `maxBytes`: 256 KiB.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;
/// Default `timeoutMs`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Accepted `maxItems` range (Lambda `telemetry-api.md`, RIE LMI schema).
pub const MAX_ITEMS_RANGE: (u64, u64) = (1000, 10_000);
/// Accepted `maxBytes` range.
pub const MAX_BYTES_RANGE: (u64, u64) = (262_144, 1_048_576);
/// Accepted `timeoutMs` range.
pub const TIMEOUT_MS_RANGE: (u64, u64) = (25, 30_000);

/// Batching limits of one subscriber. Defaults: 1000 items, 256 KiB, 1000 ms.
///
/// The fields are not range-checked: [`Buffering::from_request`] validates what a subscriber
/// asks for, while tests and the engine may build tighter limits directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffering {
    /// A batch goes out once it holds this many records.
    pub max_items: usize,
    /// A batch goes out once its body (`[` + records joined by `,` + `]`) reaches this many bytes.
    pub max_bytes: usize,
    /// A batch goes out this long after its first record was added, full or not.
    pub timeout: Duration,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering {
            max_items: DEFAULT_MAX_ITEMS,
            max_bytes: DEFAULT_MAX_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A subscription asked for buffering outside Lambda's ranges. The message names the wire field
/// and the range so it can be returned verbatim in a 400 `errorMessage`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("buffering.{field} must be between {min} and {max}, got {value}")]
pub struct BufferingError {
    /// Wire name of the field: `maxItems`, `maxBytes` or `timeoutMs`.
    pub field: &'static str,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// What the subscriber sent.
    pub value: u64,
}

impl Buffering {
    /// Validates Lambda's ranges: `maxItems` 1000..=10000, `maxBytes` 262144..=1048576,
    /// `timeoutMs` 25..=30000. A missing field takes its default.
    pub fn from_request(
        max_items: Option<u64>,
        max_bytes: Option<u64>,
        timeout_ms: Option<u64>,
    ) -> Result<Buffering, BufferingError> {
        let defaults = Buffering::default();
        let max_items = match max_items {
            Some(v) => checked("maxItems", MAX_ITEMS_RANGE, v)?,
            None => defaults.max_items as u64,
        };
        let max_bytes = match max_bytes {
            Some(v) => checked("maxBytes", MAX_BYTES_RANGE, v)?,
            None => defaults.max_bytes as u64,
        };
        let timeout = match timeout_ms {
            Some(v) => Duration::from_millis(checked("timeoutMs", TIMEOUT_MS_RANGE, v)?),
            None => defaults.timeout,
        };
        // Both values are at most ~1 M after the range check, so they fit any usize.
        Ok(Buffering {
            max_items: max_items as usize,
            max_bytes: max_bytes as usize,
            timeout,
        })
    }
}

fn checked(field: &'static str, (min, max): (u64, u64), value: u64) -> Result<u64, BufferingError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(BufferingError {
            field,
            min,
            max,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults() {
        assert_eq!(
            Buffering::from_request(None, None, None),
            Ok(Buffering::default())
        );
        let d = Buffering::default();
        assert_eq!(
            (d.max_items, d.max_bytes, d.timeout),
            (1000, 262_144, Duration::from_millis(1000))
        );
    }

    #[test]
    fn bounds_are_inclusive() {
        let lo = Buffering::from_request(Some(1000), Some(262_144), Some(25)).unwrap();
        assert_eq!(
            lo,
            Buffering {
                max_items: 1000,
                max_bytes: 262_144,
                timeout: Duration::from_millis(25)
            }
        );
        let hi = Buffering::from_request(Some(10_000), Some(1_048_576), Some(30_000)).unwrap();
        assert_eq!(
            hi,
            Buffering {
                max_items: 10_000,
                max_bytes: 1_048_576,
                timeout: Duration::from_millis(30_000)
            }
        );
    }

    #[test]
    fn out_of_range_names_the_field_and_range() {
        let e = Buffering::from_request(Some(999), None, None).unwrap_err();
        assert_eq!(e.field, "maxItems");
        assert_eq!(
            e.to_string(),
            "buffering.maxItems must be between 1000 and 10000, got 999"
        );
        let e = Buffering::from_request(None, Some(1_048_577), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "buffering.maxBytes must be between 262144 and 1048576, got 1048577"
        );
        let e = Buffering::from_request(None, None, Some(24)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "buffering.timeoutMs must be between 25 and 30000, got 24"
        );
        let e = Buffering::from_request(Some(10_001), None, Some(0)).unwrap_err();
        assert_eq!(e.field, "maxItems", "the first bad field is reported");
    }
}
