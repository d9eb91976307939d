#!/usr/bin/env bash
# Builds the CPU backend library, ffi/cpu/target/release/libllamane_cpu.{so,dylib,dll}, with Rust.
# cargo's own progress is shown: the first build compiles for about a minute. llamane finds the
# result there by itself when run from this repository; or point LLAMANE_CPU_LIB at it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v cargo >/dev/null 2>&1; then
  echo "build.sh: cargo, Rust's build tool, is not on PATH. Install Rust with rustup" >&2
  echo "(https://rustup.rs: curl --proto '=https' -sSf https://sh.rustup.rs | sh), open a new" >&2
  echo "shell so that ~/.cargo/bin is on PATH, and run 'deno task build:native' again." >&2
  exit 1
fi

echo "Building the CPU backend library (ffi/cpu, release; about a minute the first time)" >&2
cargo build --release --manifest-path Cargo.toml
