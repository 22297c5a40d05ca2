//! fnbox-wire
