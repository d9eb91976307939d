/**
 * `llamane run` as users run it: read permission for the bundle and the library, ffi permission
 * for the library, nothing else.
 */

import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import { llamane } from "./_testing.ts";

const LIBRARY_DIR = new URL("../ffi/cpu/target/release", import.meta.url).pathname;
const dir = await Deno.makeTempDir();
const bundle = `${dir}/kjv.llamane`;
await exportModel({
  checkpoint: "models/kjv-tiny/consolidated.00.pth",
  params: "models/kjv-tiny/params.json",
  output: bundle,
});
const narrow = [`--allow-read=${bundle},${LIBRARY_DIR}`, `--allow-ffi=${LIBRARY_DIR}`];

Deno.test("llamane run streams the continuation and a stats line with narrow permissions", async () => {
  const result = await llamane(
    narrow,
    "run",
    "-m",
    bundle,
    "--prompt",
    "And God said",
    "--temperature",
    "0",
    "--max_new_tokens",
    "20",
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^And God said .+\n$/s);
  assert.match(
    result.stderr,
    /prompt 4 tokens \| prefill [\d.]+ tok\/s \| generated 20 tokens \| decode [\d.]+ tok\/s \| 20 model calls \| on cpu (avx512|avxvnni|avx2|i8mm|dotprod|neon|scalar)$/m,
  );
});

Deno.test("LLAMANE_CPU_KERNELS forces the CPU kernel set, and the stats line names it", async () => {
  const args = ["run", "-m", bundle, "--prompt", "And God said", "--max_new_tokens", "4"];
  Deno.env.set("LLAMANE_CPU_KERNELS", "scalar");
  try {
    const scalar = await llamane(narrow, ...args);
    assert.equal(scalar.code, 0, scalar.stderr);
    assert.match(scalar.stderr, /\| on cpu scalar$/m);

    Deno.env.set("LLAMANE_CPU_KERNELS", "avx1024");
    const unknown = await llamane(narrow, ...args);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /LLAMANE_CPU_KERNELS="avx1024" names no kernel set this CPU can run \(it has scalar/,
    );
  } finally {
    Deno.env.delete("LLAMANE_CPU_KERNELS");
  }
});

Deno.test("LLAMANE_CPU_ACTIVATIONS=f32 runs quantized weights on f32 activations; other values fail", async () => {
  const args = ["run", "-m", bundle, "--prompt", "And God said", "--max_new_tokens", "4"];
  Deno.env.set("LLAMANE_CPU_ACTIVATIONS", "f32");
  try {
    const f32 = await llamane(narrow, ...args, "--temperature", "0");
    assert.equal(f32.code, 0, f32.stderr);
    // The prompt, then what four greedy tokens added to it.
    assert.match(f32.stdout, /^And God said.+\n$/);
    assert.match(f32.stderr, /generated 4 tokens/);

    Deno.env.set("LLAMANE_CPU_ACTIVATIONS", "int4");
    const unknown = await llamane(narrow, ...args);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /LLAMANE_CPU_ACTIVATIONS="int4" is neither "int8" nor "f32"/);
  } finally {
    Deno.env.delete("LLAMANE_CPU_ACTIVATIONS");
  }
});

Deno.test("llamane run --lookahead prints the same text in fewer calls", async () => {
  const args = ["run", "-m", bundle, "--prompt", "In the beginning", "--max_new_tokens", "48"];
  const greedy = await llamane(narrow, ...args, "--temperature", "0");
  const lookahead = await llamane(narrow, ...args, "--lookahead");
  assert.equal(lookahead.code, 0, lookahead.stderr);
  assert.equal(lookahead.stdout, greedy.stdout);
  const calls = Number(/(\d+) model calls/.exec(lookahead.stderr)![1]);
  assert.ok(calls < 48, lookahead.stderr);
  assert.match(lookahead.stderr, /tokens per decode call \(accepted \+0:\d+ \+1:\d+/);
});

Deno.test("llamane run names the missing ffi permission and refuses impossible requests", async () => {
  const noFfi = await llamane([`--allow-read=${bundle},${LIBRARY_DIR}`], "run", "-m", bundle);
  assert.equal(noFfi.code, 1);
  assert.match(noFfi.stderr, new RegExp(`run with --allow-ffi=${LIBRARY_DIR}/libllamane_cpu\\.so`));

  const coreml = await llamane(narrow, "run", "-m", bundle, "--backend", "coreml");
  assert.equal(coreml.code, 1);
  assert.match(coreml.stderr, /Core ML/);

  const sampling = await llamane(
    narrow,
    "run",
    "-m",
    bundle,
    "--lookahead",
    "--temperature",
    "0.8",
  );
  assert.match(sampling.stderr, /use temperature 0/);

  const tooWide = await llamane(narrow, "run", "-m", bundle, "--lookahead", "--window_size", "9");
  assert.match(tooWide.stderr, /exceeds the bundle's input_len 32/);
});
