//! fnbox-limits
