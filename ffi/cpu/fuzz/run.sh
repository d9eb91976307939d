#!/usr/bin/env bash
# A bounded fuzzing run of the CPU backend's parsers, as .ci/run does it: each cargo-fuzz target
# (the plan checker and the weight.bin reader) for FUZZ_SECONDS seconds (60 by default), under
# AddressSanitizer. The seeds are the test bundle's own plans and weight files
# (../tests/data/tiny_c4w); what the fuzzer adds stays in fuzz/target/corpus/, a crashing input is
# written to fuzz/artifacts/. Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${FUZZ_SECONDS:-60}"

cargo +nightly fuzz build -O
for target in plan_check weight_file; do
  mkdir -p "target/corpus/$target"
  echo "fuzzing $target for $seconds s" >&2
  # -timeout: one input taking 10 s is a hang; the rss limit stops a runaway allocation. The
  # progress lines are dropped; a crash report and the final statistics are kept.
  set +e
  cargo +nightly fuzz run -O "$target" "target/corpus/$target" ../tests/data/tiny_c4w -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
    grep -v -e '^#[0-9]' -e 'NEW_FUNC' -e 'Uses: ' -e 'ecommended dictionary'
  status="${PIPESTATUS[0]}"
  set -e
  if [ "$status" -ne 0 ]; then
    echo "fuzzing $target failed: the input is in ffi/cpu/fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
