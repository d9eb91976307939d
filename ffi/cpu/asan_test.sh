#!/usr/bin/env bash
# The crate's tests under AddressSanitizer (nightly Rust), as .ci/run does it: a use after free, an
# out-of-bounds access or a leak in the library or its C ABI aborts the run with a report.
# allocator_may_return_null: some tests check that a plan too large to allocate is an error, which
# needs the allocator to say no rather than AddressSanitizer to stop.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
# --target keeps the sanitizer off build scripts and proc macros, which run on the host.
RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="allocator_may_return_null=1" \
  cargo +nightly test --locked --quiet --profile asan --target "$host" --target-dir target/asan
