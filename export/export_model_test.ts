import assert from "node:assert/strict";
import { exportModel } from "./export_model.ts";
import { DiskFullError } from "./bundle_directory.ts";
import { ExportOptionsError, parseEmbeddingQuantization } from "./options.ts";
import type { ExportOptions } from "./options.ts";
import { UnevenSplitError } from "./split_linear.ts";
import { readPackage } from "../coreml/package.ts";
import { readManifest } from "../bundle/manifest.ts";
import { TINY_PARAMS, writeTinyLlama } from "../testing/tiny_llama.ts";
import { SUPPORTED_OPS } from "../coreml/ops.ts";
import { readBundledTokenizer } from "../bundle/tokenizer.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { oracleTokenizerDir } from "../testing/hf_oracle.ts";

const tiny = await writeTinyLlama();

async function exportTiny(options: Partial<ExportOptions> = {}): Promise<string> {
  const output = `${await Deno.makeTempDir()}/tiny.llamane`;
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output,
    inputLen: 8,
    maxContextLen: 40,
    ...options,
  });
  return output;
}

async function listTree(dir: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const walk = async (path: string, prefix: string) => {
    for await (const entry of Deno.readDir(path)) {
      if (entry.isDirectory) await walk(`${path}/${entry.name}`, `${prefix}${entry.name}/`);
      else files.set(`${prefix}${entry.name}`, await Deno.readFile(`${path}/${entry.name}`));
    }
  };
  await walk(dir, "");
  return files;
}

Deno.test("exportModel() writes embedding, blocks and head pieces joined by the hidden state", async () => {
  const bundle = await exportTiny();
  const manifest = await readManifest(bundle);
  assert.deepEqual(manifest.pieces.map((p) => p.name), ["embedding", "blocks", "head"]);
  const [embedding, blocks, head] = manifest.pieces.map((p) => p.functions[0]!);
  const names = (list: readonly { name: string }[]) => list.map((io) => io.name);
  assert.deepEqual(names(embedding!.inputs), ["tokens"]);
  assert.deepEqual(names(embedding!.outputs), ["hidden_0"]);
  assert.deepEqual(names(blocks!.inputs), [
    "hidden_0",
    "mask",
    "freqs_cos",
    "freqs_sin",
    "k_cache_0",
    "v_cache_0",
    "k_cache_1",
    "v_cache_1",
  ]);
  assert.deepEqual(names(blocks!.outputs), [
    "k_new_0",
    "v_new_0",
    "k_new_1",
    "v_new_1",
    "hidden_2",
  ]);
  assert.deepEqual(names(head!.inputs), ["hidden_2"]);
  assert.deepEqual(head!.outputs, [{
    name: "logits",
    dtype: "fp16",
    shape: [1, 8, TINY_PARAMS.vocab_size],
  }]);
  const cache = blocks!.inputs.find((io) => io.name === "k_cache_1")!;
  assert.deepEqual(cache.shape, [1, TINY_PARAMS.n_kv_heads, 32, 16]);
  assert.deepEqual(blocks!.inputs.find((io) => io.name === "mask")!.shape, [1, 8, 40]);
});

Deno.test("exportModel() keeps every tensor at rank 4 or less and never repeats K/V heads", async () => {
  const bundle = await exportTiny();
  const { model } = readPackage(`${bundle}/blocks.mlpackage`);
  const ops = model.program.functions.get("main")!.block.operations;
  for (const op of ops) {
    assert.ok(op.type === "const" || SUPPORTED_OPS.includes(op.type), `unexpected op ${op.type}`);
    for (const out of op.outputs) {
      assert.ok(out.type.shape.length <= 4, `${out.name} has rank ${out.type.shape.length}`);
    }
  }
  // Keys stay at Hkv heads and broadcast over the query groups: [Hkv, 1, C + L, hd].
  const keys = ops.find((op) => op.name === "layers_0_k_grouped")!;
  assert.deepEqual(keys.outputs[0]!.type.shape, [TINY_PARAMS.n_kv_heads, 1, 40, 16]);
  const scores = ops.find((op) => op.name === "layers_0_scores")!;
  assert.deepEqual(scores.outputs[0]!.type.shape, [2, 2, 8, 40]);
});

Deno.test("exportModel() writes one program without graph breaks", async () => {
  const manifest = await readManifest(await exportTiny({ graphBreaks: false }));
  assert.deepEqual(manifest.pieces.map((p) => p.name), ["model"]);
  const fn = manifest.pieces[0]!.functions[0]!;
  assert.equal(fn.inputs[0]!.name, "tokens");
  assert.equal(fn.outputs.at(-1)!.name, "logits");
});

Deno.test("exportModel() splits linear layers by the target split size", async () => {
  const bundle = await exportTiny({ targetSplitSize: 16, maxSplits: 8 });
  const { model } = readPackage(`${bundle}/blocks.mlpackage`);
  const ops = model.program.functions.get("main")!.block.operations;
  // wq [64, 64] -> 64 // 16 = 4 parts; w1 [192, 64] -> 12, capped at 8 parts of 24 rows.
  assert.equal(
    ops.filter((op) => op.type === "linear" && op.name.startsWith("layers_0_wq_part")).length,
    4,
  );
  const w1 = ops.filter((op) => op.type === "linear" && op.name.startsWith("layers_0_w1_part"));
  assert.equal(w1.length, 8);
  assert.deepEqual(w1[0]!.outputs[0]!.type.shape, [1, 8, 24]);
});

Deno.test("exportModel() writes prefill and decode functions that share one set of weights", async () => {
  const single = await readManifest(await exportTiny());
  const bundle = await exportTiny({ multifunction: true });
  const manifest = await readManifest(bundle);
  assert.equal(manifest.export.cacheLen, 39);
  for (const piece of manifest.pieces) {
    assert.deepEqual(piece.functions.map((f) => [f.name, f.callLength]), [["prefill", 8], [
      "decode",
      1,
    ]]);
    // Identical constants are written once: the weights cost what one function's do.
    const twin = single.pieces.find((p) => p.name === piece.name)!;
    assert.ok(
      piece.weightBytes <= twin.weightBytes * 1.02,
      `${piece.name}: ${piece.weightBytes} vs ${twin.weightBytes}`,
    );
  }
  const head = manifest.pieces.find((p) => p.name === "head")!;
  const [prefill, decode] = head.functions;
  assert.deepEqual(prefill!.inputs.map((io) => [io.name, io.shape]), [["hidden_2", [1, 8, 64]], [
    "last_valid_token_pos",
    [1],
  ]]);
  assert.deepEqual(prefill!.outputs, [{
    name: "logits",
    dtype: "fp16",
    shape: [1, 1, TINY_PARAMS.vocab_size],
  }]);
  assert.deepEqual(decode!.inputs[0]!.shape, [1, 1, 64]);
  const { model } = readPackage(`${bundle}/head.mlpackage`);
  assert.equal(model.description.defaultFunctionName, "decode");
  assert.deepEqual([...model.program.functions.keys()], ["prefill", "decode"]);
});

/** Asserts that two bundle directories hold the same files, byte for byte. */
async function assertSameBundles(first: string, second: string): Promise<void> {
  const [a, b] = [await listTree(first), await listTree(second)];
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, bytes] of a) assert.deepEqual(bytes, b.get(name), name);
}

Deno.test("exportModel() is deterministic: two exports are byte-identical", async () => {
  await assertSameBundles(await exportTiny(), await exportTiny());
});

Deno.test("exportModel() writes the same bundle on one thread and on three", async () => {
  const variants: Partial<ExportOptions>[] = [
    {},
    { linearQuantize: "b4w", asymmetric: true, embeddingQuantize: { bits: 4, groupSize: 32 } },
    { linearQuantize: "lut4", lutGroupSize: 4, embeddingQuantize: { paletteBits: 6 } },
  ];
  for (const options of variants) {
    await assertSameBundles(
      await exportTiny({ ...options, threads: 1 }),
      await exportTiny({ ...options, threads: 3 }),
    );
  }
});

/** Exports into a fresh directory, throwing `error` from the third progress report. */
async function interruptedExport(error: Error): Promise<{ dir: string; caught: unknown }> {
  const dir = await Deno.makeTempDir();
  let calls = 0;
  try {
    await exportModel({
      checkpoint: tiny.checkpoint,
      params: tiny.params,
      output: `${dir}/out.llamane`,
      onProgress: () => {
        if (++calls === 3) throw error;
      },
    });
  } catch (caught) {
    return { dir, caught };
  }
  throw new Error("the export did not fail");
}

Deno.test("exportModel() leaves nothing behind when it fails halfway", async () => {
  const interrupted = new Error("interrupted");
  const { dir, caught } = await interruptedExport(interrupted);
  assert.equal(caught, interrupted);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("exportModel() says so when the disk fills up, and leaves nothing behind", async () => {
  // What Deno throws for ENOSPC, raised midway as a real full disk would be.
  const full = Object.assign(new Error("No space left on device (os error 28)"), {
    code: "ENOSPC",
  });
  const { dir, caught } = await interruptedExport(full);
  assert.ok(caught instanceof DiskFullError);
  assert.match(caught.message, /Cannot write ".*out\.llamane": the disk is full/);
  assert.equal(caught.cause, full);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("exportModel() creates the directories above the output path", async () => {
  const dir = await Deno.makeTempDir();
  const output = `${dir}/models/new/tiny.llamane`;
  await exportModel({ checkpoint: tiny.checkpoint, params: tiny.params, output, inputLen: 8 });
  assert.equal((await readManifest(output)).export.inputLen, 8);
  assert.deepEqual([...Deno.readDirSync(`${dir}/models/new`)].map((e) => e.name), ["tiny.llamane"]);
});

Deno.test("exportModel() replaces an older bundle but nothing else", async () => {
  const output = await exportTiny({ linearQuantize: "none" });
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    output,
    inputLen: 8,
    maxContextLen: 40,
  });
  assert.equal((await readManifest(output)).export.linearQuantize, "c4w");

  const file = `${await Deno.makeTempDir()}/precious.txt`;
  await Deno.writeTextFile(file, "keep me");
  await assert.rejects(
    exportModel({ checkpoint: tiny.checkpoint, params: tiny.params, output: file }),
    /output ".*precious.txt" exists and is not a llamane bundle/,
  );
  assert.equal(await Deno.readTextFile(file), "keep me");
});

Deno.test("exportModel() rejects bad options before writing anything", async () => {
  const dir = await Deno.makeTempDir();
  const output = `${dir}/never.llamane`;
  const base = { checkpoint: tiny.checkpoint, params: tiny.params, output };
  const cases: [Partial<ExportOptions>, RegExp | (new (...args: never[]) => Error)][] = [
    [
      { inputLen: 64, maxContextLen: 64 },
      /input_len \(64\) must be less than max_context_len \(64\)/,
    ],
    [
      { embeddingQuantize: { bits: 4, groupSize: 48 } },
      /group size 48 does not divide the embedding row length 64/,
    ],
    [
      { embeddingQuantize: { bits: 4, groupSize: 16 } },
      /-E 4,16 also stores the output head, a linear layer, which takes one scale per row/,
    ],
    [
      { embeddingQuantize: { paletteBits: 4 }, lutGroupSize: 32, targetSplitSize: 16 },
      /--lut_group_size 32 does not divide the 16 rows of each part of "output.weight"/,
    ],
    [{ targetSplitSize: 20 }, UnevenSplitError],
    [{ dtype: "bf16" as "fp16" }, /dtype must be fp16 or fp32, got "bf16"/],
    [{ linearQuantize: "q4" as "c4w" }, /linear_quantize must be one of none, c4w, b4w, c8w, b8w/],
    [
      { linearQuantize: "lut4", lutGroupSize: 3 },
      /--lut_group_size 3 does not divide the 64 rows of each part of "layers.0.attention.wq.weight"/,
    ],
    [
      { embeddingQuantize: { paletteBits: 4 }, lutGroupSize: 64 },
      /--lut_group_size 64 does not divide the 96 rows of "tok_embeddings.weight"/,
    ],
    [{ linearQuantize: "lut4", lutGroupSize: 0 }, /lut_group_size must be a positive integer/],
    [{ threads: 0 }, /threads must be a positive integer, got 0/],
    [{ checkpoint: `${dir}/missing.pth` }, /no such file/],
  ];
  for (const [options, expected] of cases) {
    await assert.rejects(exportModel({ ...base, ...options }), expected as RegExp);
  }
  assert.throws(() => parseEmbeddingQuantization("3,0"), ExportOptionsError);
  assert.throws(
    () => parseEmbeddingQuantization("8"),
    /must be "<bits>,<group size>", lut4, lut6, "none" or "keep", got "8"/,
  );
  assert.deepEqual(parseEmbeddingQuantization("lut6"), { paletteBits: 6 });
  assert.equal(parseEmbeddingQuantization("keep"), "keep");
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("exportModel() refuses palettes fitted to fewer values than they have entries", async () => {
  const narrow = await writeTinyLlama({ ...TINY_PARAMS, dim: 32, n_heads: 2, n_kv_heads: 1 });
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    exportModel({
      checkpoint: narrow.checkpoint,
      params: narrow.params,
      output: `${dir}/never.llamane`,
      linearQuantize: "lut6", // one palette per row by default
    }),
    /lut6 fits palettes of 64 entries, but a group of 1 rows of "layers.0.attention.wq.weight" holds only 32 values: raise --lut_group_size/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], []);
});

Deno.test("exportModel() refuses an output that holds its own inputs, and deletes nothing", async () => {
  const output = await exportTiny();
  const checkpoint = `${output}/consolidated.00.pth`;
  const params = `${output}/params.json`;
  await Deno.copyFile(tiny.checkpoint, checkpoint);
  await Deno.copyFile(tiny.params, params);
  await assert.rejects(
    exportModel({ checkpoint, params, output, inputLen: 8, maxContextLen: 40 }),
    (error: Error) =>
      error instanceof ExportOptionsError &&
      /output ".*tiny.llamane" holds the input ".*consolidated.00.pth"/.test(error.message),
  );
  assert.ok(Deno.statSync(checkpoint).isFile);
  assert.ok(Deno.statSync(params).isFile);
  assert.equal((await readManifest(output)).export.inputLen, 8);
});

/**
 * Starts an export to `output` in another process that stops midway and waits, as an export does
 * while it reads a large checkpoint; resolves once its staging directory exists.
 */
async function exportInAnotherProcess(output: string): Promise<Deno.ChildProcess> {
  const script = `
    import { exportModel } from ${
    JSON.stringify(new URL("./export_model.ts", import.meta.url).href)
  };
    await exportModel({
      checkpoint: ${JSON.stringify(tiny.checkpoint)},
      params: ${JSON.stringify(tiny.params)},
      output: ${JSON.stringify(output)},
      onProgress: () => { console.log("staged"); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); },
    });`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--quiet",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      script,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /staged/);
  reader.releaseLock();
  return child;
}

function stagingDirectories(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(".partial-"))
    .sort();
}

Deno.test("exportModel() sweeps the staging directories of killed exports, and only those", async () => {
  const dir = await Deno.makeTempDir();
  const output = `${dir}/out.llamane`;
  const killed = await exportInAnotherProcess(output);
  killed.kill("SIGKILL");
  await killed.status;
  const [left] = stagingDirectories(dir);
  assert.ok(left !== undefined, "a killed export leaves its staging directory");

  const running = await exportInAnotherProcess(output);
  const foreign = `${dir}/.out.llamane.partial-notours`;
  await Deno.mkdir(foreign);
  const live = stagingDirectories(dir).filter((n) => n !== left && !foreign.endsWith(n));
  assert.equal(live.length, 1);

  await exportModel({ checkpoint: tiny.checkpoint, params: tiny.params, output, inputLen: 8 });
  // The killed export's directory is gone; the running export's and the unmarked one remain.
  assert.deepEqual(stagingDirectories(dir), [".out.llamane.partial-notours", live[0]!].sort());
  running.kill("SIGKILL");
  await running.status;
});

Deno.test("exportModel() creates the bundle with the permissions the umask gives", async () => {
  const output = await exportTiny();
  // A directory made the ordinary way gets 0o777 less the umask: the bundle must match it.
  const plain = `${await Deno.makeTempDir()}/plain`;
  await Deno.mkdir(plain);
  assert.equal(Deno.statSync(output).mode! & 0o777, Deno.statSync(plain).mode! & 0o777);
});

Deno.test("exportModel() bundles a tokenizer.json, and refuses one with ids the model cannot embed", async () => {
  const json = `${await oracleTokenizerDir("llama3")}/tokenizer.json`;
  const tokenizer = await loadTokenizer(json);
  const parent = await Deno.makeTempDir();
  await assert.rejects(
    () =>
      exportModel({
        checkpoint: tiny.checkpoint,
        params: tiny.params,
        tokenizer: json,
        output: `${parent}/t.llamane`,
      }),
    (error: unknown) =>
      error instanceof ExportOptionsError &&
      error.message ===
        `Cannot export: the tokenizer "${json}" has ${tokenizer.vocabSize} ids but the model ` +
          `embeds only ${TINY_PARAMS.vocab_size}: it is not this model's tokenizer`,
  );
  assert.deepEqual([...Deno.readDirSync(parent)], []);

  // Padded to a multiple of the split size, as real vocabularies often are.
  const wide = await writeTinyLlama({ ...TINY_PARAMS, vocab_size: 3072 });
  const bundle = `${parent}/wide.llamane`;
  await exportModel({
    checkpoint: wide.checkpoint,
    params: wide.params,
    tokenizer: json,
    output: bundle,
  });
  const manifest = await readManifest(bundle);
  // The oracle's folder has a tokenizer_config.json naming <|eot_id|> as eos_token.
  const eot = tokenizer.encode("<|eot_id|>", { allowedSpecial: "all" })[0]!;
  assert.deepEqual(manifest.tokenizer, {
    file: "tokenizer.json",
    kind: "tokenizer.json",
    bosId: tokenizer.bosId,
    eosId: eot,
    stopTokens: [eot],
    addBos: true,
    chatTemplate: null,
  });
  assert.deepEqual(await Deno.readFile(`${bundle}/tokenizer.json`), await Deno.readFile(json));
  const bundled = readBundledTokenizer(bundle, manifest.tokenizer!);
  assert.deepEqual(bundled.encode("Hello, world"), tokenizer.encode("Hello, world"));

  // A Hugging Face folder: configs beside tokenizer.json say BOS, stop tokens and template.
  const folder = await Deno.makeTempDir();
  await Deno.copyFile(json, `${folder}/tokenizer.json`);
  const template =
    "{% for m in messages %}<|start_header_id|>{{ m.content }}<|eot_id|>{% endfor %}";
  await Deno.writeTextFile(
    `${folder}/tokenizer_config.json`,
    JSON.stringify({ add_bos_token: false, eos_token: "<|eot_id|>", chat_template: template }),
  );
  const endOfText = tokenizer.encode("<|end_of_text|>", { allowedSpecial: "all" })[0]!;
  await Deno.writeTextFile(
    `${folder}/generation_config.json`,
    JSON.stringify({ eos_token_id: [endOfText, eot] }),
  );
  const configured = `${parent}/configured.llamane`;
  await exportModel({
    checkpoint: wide.checkpoint,
    params: wide.params,
    tokenizer: `${folder}/tokenizer.json`,
    output: configured,
  });
  const spec = (await readManifest(configured)).tokenizer!;
  assert.deepEqual(
    { addBos: spec.addBos, eosId: spec.eosId, stopTokens: spec.stopTokens },
    { addBos: false, eosId: eot, stopTokens: [endOfText, eot].sort((a, b) => a - b) },
  );
  assert.equal(spec.chatTemplate, "chat_template.jinja");
  assert.equal(await Deno.readTextFile(`${configured}/chat_template.jinja`), template);

  const broken = `${folder}/broken.jinja`;
  await Deno.writeTextFile(broken, "{% for m in messages %}");
  await assert.rejects(
    () =>
      exportModel({
        checkpoint: wide.checkpoint,
        params: wide.params,
        tokenizer: `${folder}/tokenizer.json`,
        chatTemplate: broken,
        output: `${parent}/broken.llamane`,
      }),
    (error: unknown) =>
      error instanceof ExportOptionsError &&
      error.message.includes(`Cannot render the chat template "${broken}": it does not parse`),
  );
});

Deno.test("exportModel() bundles a .gguf's vocabulary as tokenizer.gguf, and says when a GGUF has none", async () => {
  const vocab = `${await oracleTokenizerDir("llama3")}/vocab.gguf`;
  const tokenizer = await loadTokenizer(vocab);
  const parent = await Deno.makeTempDir();
  await assert.rejects(
    () =>
      exportModel({
        checkpoint: tiny.checkpoint,
        params: tiny.params,
        tokenizer: vocab,
        output: `${parent}/t.llamane`,
      }),
    (error: unknown) =>
      error instanceof ExportOptionsError &&
      error.message ===
        `Cannot export: the tokenizer "${vocab}" has ${tokenizer.vocabSize} ids but the model ` +
          `embeds only ${TINY_PARAMS.vocab_size}: it is not this model's tokenizer`,
  );

  const wide = await writeTinyLlama({ ...TINY_PARAMS, vocab_size: 3072 });
  const bundle = `${parent}/wide.llamane`;
  const summary = await exportModel({
    checkpoint: wide.checkpoint,
    params: wide.params,
    tokenizer: vocab,
    output: bundle,
    inputLen: 8,
    maxContextLen: 40,
  });
  assert.equal(summary.tokenizerOrigin, `the vocabulary of "${vocab}"`);
  const spec = (await readManifest(bundle)).tokenizer!;
  assert.deepEqual(spec, {
    file: "tokenizer.gguf",
    kind: "gguf",
    bosId: tokenizer.bosId,
    eosId: tokenizer.eosId,
    stopTokens: tokenizer.stopTokens,
    addBos: tokenizer.addBos,
    chatTemplate: null,
  });
  const bundled = readBundledTokenizer(bundle, spec);
  const text = "<|begin_of_text|>Hello, world 123 <|eot_id|>";
  assert.deepEqual(
    bundled.encode(text, { allowedSpecial: "all" }),
    tokenizer.encode(text, { allowedSpecial: "all" }),
  );

  // A GGUF without tokenizer.* metadata: refused as a tokenizer, exported without one.
  const bare = new URL("../testdata/gguf/tiny_llama3.gguf", import.meta.url).pathname;
  await assert.rejects(
    () =>
      exportModel({
        checkpoint: wide.checkpoint,
        params: wide.params,
        tokenizer: bare,
        output: `${parent}/bare-tokenizer.llamane`,
      }),
    (error: unknown) =>
      error instanceof ExportOptionsError &&
      error.message ===
        `Cannot export: the tokenizer "${bare}" is a GGUF without a vocabulary (no ` +
          "tokenizer.ggml.model)",
  );
  const untokenized = await exportModel({
    checkpoint: bare,
    output: `${parent}/bare.llamane`,
    inputLen: 8,
    maxContextLen: 40,
  });
  assert.equal(
    untokenized.tokenizerOrigin,
    "none: the GGUF checkpoint holds no vocabulary (no tokenizer.* metadata)",
  );
  assert.equal(untokenized.manifest.tokenizer, null);
  assert.deepEqual(
    [...Deno.readDirSync(untokenized.output)].map((e) => e.name).filter((n) =>
      !n.endsWith("package")
    ),
    ["manifest.json"],
  );
});
