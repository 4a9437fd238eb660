# Sourced by the build scripts: the Rust-for-Linux toolchain (see Documentation/build.md).
# Debian's rustc-web must be used for everything the kernel compiles (also host proc-macros: HOSTRUSTC),
# because its rust-web-src is the only core source matching an installed rustc; rustup's shims come first in PATH.
OVERCAST_CACHE=${OVERCAST_CACHE:-/var/cache/overcast}
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
KRUSTC=${KRUSTC:-/usr/bin/rustc}
KRUSTDOC=${KRUSTDOC:-/usr/bin/rustdoc}
if [ -z "${KBINDGEN:-}" ]; then
  if [ -x "$HOME/.cargo/bin/bindgen" ]; then KBINDGEN=$HOME/.cargo/bin/bindgen; else KBINDGEN=$(command -v bindgen || echo bindgen); fi
fi
KMAKE_TOOLS=(RUSTC="$KRUSTC" HOSTRUSTC="$KRUSTC" RUSTDOC="$KRUSTDOC" BINDGEN="$KBINDGEN")
LINUX_SRC=${LINUX_SRC:-$OVERCAST_CACHE/src/linux}
