//! fnbox-fg
