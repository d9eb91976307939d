#!/usr/bin/env bash
# The aarch64 kernels under qemu-user, as .ci/run does it: the kernel tests for each QEMU CPU model
# below, so that every Arm kernel set runs against the scalar reference and the run-time choice is
# checked where dotprod or i8mm is missing. Needs qemu-user, gcc-aarch64-linux-gnu (the linker) and
# libc6-dev-arm64-cross (the loader qemu runs the tests with). No timing here: qemu's speed says
# nothing about a real Arm CPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

rustup target add aarch64-unknown-linux-gnu >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Clippy on the Arm code, which clippy on an x86 host does not compile.
cargo clippy --locked --release --quiet --target aarch64-unknown-linux-gnu --target-dir target/qemu \
  --all-targets -- -D warnings
test_qemu() {
  # qemu-aarch64 reads its CPU model from QEMU_CPU; the selection test reads it too.
  QEMU_CPU="$1" cargo test --locked --release --quiet --target aarch64-unknown-linux-gnu \
    --target-dir target/qemu "${@:2}"
}
# max has dotprod and i8mm: every Arm set against the scalar reference, and the forcing variable.
test_qemu max --test linear_kernels --test palette_kernels --test forced_kernels --test kernel_choice
# Neoverse N1 has dotprod but not i8mm, Cortex-A72 neither: the choice falls back.
test_qemu neoverse-n1 --test kernel_choice
test_qemu cortex-a72 --test kernel_choice
