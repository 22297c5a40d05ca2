//! fnbox-telemetry
