//! Positive errno values (the kernel returns their negation).  Kept here so that host code and the kernel module
//! agree on one mapping without depending on the kernel's bindings.

/// No such file or directory: unknown connector id / entry.
pub const ENOENT: i32 = 2;
/// Argument list too long: oversized /proc write.
pub const E2BIG: i32 = 7;
/// Permission denied.
pub const EACCES: i32 = 13;
/// Device or resource busy.
pub const EBUSY: i32 = 16;
/// File exists: duplicate entry.
pub const EEXIST: i32 = 17;
/// Invalid argument: every syntax and semantic error of a command.
pub const EINVAL: i32 = 22;
/// No space left on device: the endpoint table is full.
pub const ENOSPC: i32 = 28;
/// Protocol error: malformed wire header.
pub const EPROTO: i32 = 71;
/// Address already in use.
pub const EADDRINUSE: i32 = 98;
