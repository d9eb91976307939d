#!/usr/bin/env bash
# Builds the Core ML bridge, ffi/coreml/target/release/libllamane_coreml.dylib, on macOS with Rust
# (rustup) and the Xcode command line tools, which provide the linker and the CoreML framework.
# Clippy runs first because it enforces the SAFETY comment on every unsafe block (src/lib.rs).
# llamane finds the result there by itself; or point LLAMANE_COREML_LIB at it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ "$(uname -s)" != Darwin ]]; then
  echo "build.sh: the Core ML bridge builds only on macOS. Elsewhere it can be type-checked:" >&2
  echo "  rustup target add aarch64-apple-darwin" >&2
  echo "  cargo clippy --target aarch64-apple-darwin --no-default-features -- -D warnings" >&2
  exit 1
fi

cargo clippy --release --locked -- -D warnings
cargo build --release --locked
echo "$(pwd)/target/release/libllamane_coreml.dylib"
