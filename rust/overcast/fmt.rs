// SPDX-License-Identifier: GPL-2.0

//! Printing values of the shared `no_std` crates with the kernel's `pr_*!` macros.
//!
//! Since 7.x the kernel's format macros take `kernel::fmt::Display`, not `core::fmt::Display`. The logic shared with
//! host tests implements `core::fmt::Display`; [`Show`] bridges the two: `pr_err!("{}\n", Show(&err))`.

use core::fmt;

/// Displays a `core::fmt::Display` value through `kernel::fmt::Display`.
pub struct Show<'a, T: fmt::Display + ?Sized>(pub &'a T);

impl<T: fmt::Display + ?Sized> kernel::fmt::Display for Show<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}
