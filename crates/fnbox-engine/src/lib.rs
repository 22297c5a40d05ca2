//! fnbox-engine
