//! fnbox-package
