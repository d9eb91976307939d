import assert from "node:assert/strict";
import { CheckpointFormatError } from "../checkpoint/errors.ts";
import { buildGguf } from "../gguf/_testing.ts";
import { exportModel } from "../export/export_model.ts";
import {
  huggingFaceConfig,
  huggingFaceTensors,
  toRotateHalf,
  writeHuggingFaceFolder,
} from "../testing/hugging_face_folder.ts";
import { TINY_PARAMS, writeSafetensors, writeTinyLlama } from "../testing/tiny_llama.ts";
import { ParamsError } from "./config.ts";
import { openModel } from "./open.ts";
import { NotLlamaError } from "./provenance.ts";
import { QkLayoutError } from "./qk_layout.ts";
import { ropeFrequencies } from "./rope.ts";
import { openCheckpoint } from "../checkpoint/mod.ts";

const HEAD_DIM = TINY_PARAMS.dim / TINY_PARAMS.n_heads;
const tiny = await writeTinyLlama();
const hfTensors = await huggingFaceTensors(tiny.checkpoint, HEAD_DIM);
const hfConfig = huggingFaceConfig(TINY_PARAMS, false);

async function folder(
  config: Record<string, unknown> = hfConfig,
  shards = 1,
  tensors = hfTensors,
): Promise<string> {
  const dir = `${await Deno.makeTempDir()}/model`;
  await writeHuggingFaceFolder(dir, config, tensors, shards);
  return dir;
}

/** An export that must fail with `error` and leave no bundle behind. */
async function refusesExport(
  checkpoint: string,
  error: RegExp | typeof CheckpointFormatError,
  params?: string,
): Promise<void> {
  const output = `${await Deno.makeTempDir()}/out.llamane`;
  await assert.rejects(exportModel({ checkpoint, params, output }), error);
  await assert.rejects(Deno.stat(output), Deno.errors.NotFound);
}

Deno.test("openModel() reads a Hugging Face folder as the Meta checkpoint it came from", async () => {
  using meta = await openModel({ checkpoint: tiny.checkpoint, params: tiny.params });
  for (const shards of [1, 3]) {
    const dir = await folder(hfConfig, shards);
    for (const checkpoint of [dir, `${dir}/config.json`]) {
      using hf = await openModel({ checkpoint });
      assert.equal(hf.layout, "hugging-face");
      // config.json says what params.json does not: the trained context.
      assert.deepEqual(hf.config, {
        ...meta.config,
        trainedContext: hfConfig.max_position_embeddings,
      });
      assert.deepEqual(hf.source.list(), meta.source.list());
      for (const { name } of meta.source.list()) {
        assert.deepEqual(await hf.source.readFloat32(name), await meta.source.readFloat32(name));
        // Row ranges that start and end inside a head.
        assert.deepEqual(
          await hf.source.readFloat32(name, { start: 3, end: 21 }),
          await meta.source.readFloat32(name, { start: 3, end: 21 }),
          name,
        );
      }
      const stored = await hf.source.readStored("layers.1.attention.wk.weight", {
        start: 5,
        end: 9,
      });
      assert.deepEqual(
        new Float32Array(stored.bytes.buffer),
        await meta.source.readFloat32("layers.1.attention.wk.weight", { start: 5, end: 9 }),
      );
    }
  }
});

Deno.test("config.json: every field is read, with llama3 RoPE scaling and its provenance", async () => {
  const rope = { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4 };
  const dir = await folder({
    ...hfConfig,
    head_dim: HEAD_DIM,
    rope_theta: 500000,
    rms_norm_eps: 1e-6,
    rope_scaling: { ...rope, original_max_position_embeddings: 8192 },
  });
  using model = await openModel({ checkpoint: dir });
  assert.deepEqual(model.config.ropeScaling, {
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalContextLength: 8192,
  });
  assert.equal(model.config.ropeTheta, 500000);
  assert.equal(model.config.normEps, 1e-6);
  assert.equal(model.provenance.headDim, `config.json "head_dim"`);
  assert.equal(model.provenance.nKvHeads, `config.json "num_key_value_heads"`);
  assert.equal(model.config.trainedContext, 256);
  assert.equal(model.provenance.trainedContext, `config.json "max_position_embeddings"`);
  await assert.rejects(
    openModel({ checkpoint: await folder({ ...hfConfig, rope_scaling: rope }) }),
    /"rope_scaling.original_max_position_embeddings" must be a positive number/,
  );
  await assert.rejects(
    openModel({ checkpoint: await folder({ ...hfConfig, rope_scaling: { type: "yarn" } }) }),
    /RoPE scaling of type "yarn"/,
  );
});

Deno.test("a config.json that is not a Llama is refused, naming the architecture and what differs", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ architectures: ["Qwen2ForCausalLM"] }, /Qwen2ForCausalLM .*biases on the q, k and v/],
    [{ architectures: ["Qwen3ForCausalLM"] }, /Qwen3ForCausalLM .*qk-norm/],
    [{ architectures: ["MixtralForCausalLM"] }, /MixtralForCausalLM .*mixture-of-experts/],
    [{ architectures: ["GPT2LMHeadModel"] }, /GPT2LMHeadModel .*only LlamaForCausalLM/],
    [{ attention_bias: true }, /LlamaForCausalLM .*attention biases/],
    [{ architectures: ["MistralForCausalLM"], sliding_window: 4096 }, /sliding-window attention/],
    [{ hidden_act: "gelu" }, /activation "gelu" instead of SiLU/],
  ];
  for (const [change, error] of cases) {
    const dir = await folder({ ...hfConfig, ...change });
    await assert.rejects(openModel({ checkpoint: dir }), NotLlamaError);
    await refusesExport(dir, error);
  }
  // Mistral without a sliding window is a Llama under another name.
  using mistral = await openModel({
    checkpoint: await folder({ ...hfConfig, architectures: ["MistralForCausalLM"] }),
  });
  assert.equal(mistral.config.dim, TINY_PARAMS.dim);
});

Deno.test("tensors a Llama does not have are refused, not ignored", async () => {
  const bias = {
    name: "model.layers.0.self_attn.q_proj.bias",
    shape: [64],
    values: new Float32Array(64),
  };
  await refusesExport(
    await folder(hfConfig, 1, [...hfTensors, bias]),
    /1 tensor\(s\) have no place in a Llama \("model.layers.0.self_attn.q_proj.bias"\)/,
  );
});

Deno.test("missing shards, an index naming absent files and mismatched shapes fail before output", async () => {
  const sharded = await folder(hfConfig, 3);
  await Deno.remove(`${sharded}/model-00002-of-00003.safetensors`);
  await refusesExport(sharded, /names 1 shard file\(s\) absent from .*: model-00002-of-00003/);

  const lying = await folder(hfConfig, 3);
  const index = JSON.parse(await Deno.readTextFile(`${lying}/model.safetensors.index.json`));
  index.weight_map["model.norm.weight"] = "model-00001-of-00003.safetensors";
  await Deno.writeTextFile(`${lying}/model.safetensors.index.json`, JSON.stringify(index));
  await refusesExport(lying, /puts tensor "model.norm.weight" in model-00001-of-00003.* not hold/);

  const escaping = await folder(hfConfig, 2);
  index.weight_map = { "model.norm.weight": "../elsewhere.safetensors" };
  await Deno.writeTextFile(`${escaping}/model.safetensors.index.json`, JSON.stringify(index));
  await refusesExport(escaping, /not a file name in the index's folder/);

  const empty = `${await Deno.makeTempDir()}/model`;
  await Deno.mkdir(empty);
  await Deno.writeTextFile(`${empty}/config.json`, JSON.stringify(hfConfig));
  await refusesExport(empty, /neither model.safetensors nor model.safetensors.index.json/);

  await refusesExport(
    await folder({ ...hfConfig, intermediate_size: 100 }),
    /"layers.0.feed_forward.w1.weight": expected shape \[100, 64\], got \[192, 64\]/,
  );
});

Deno.test("-p goes with Meta checkpoints only, and Meta checkpoints need it", async () => {
  await assert.rejects(
    openModel({ checkpoint: tiny.checkpoint }),
    (error: Error) => error instanceof ParamsError && /needs its params.json/.test(error.message),
  );
  await assert.rejects(openModel({ checkpoint: await folder(), params: tiny.params }), /drop -p/);
  const renamed = `${await Deno.makeTempDir()}/model.safetensors`;
  await writeSafetensors(renamed, hfTensors);
  await assert.rejects(
    openModel({ checkpoint: renamed, params: tiny.params }),
    /Hugging Face tensor names .*pass its folder/,
  );
});

Deno.test("use_scaled_rope without --rope_scale_factor warns, naming the flag and both values", async () => {
  const params = `${tiny.dir}/scaled_params.json`;
  await Deno.writeTextFile(params, JSON.stringify({ ...TINY_PARAMS, use_scaled_rope: true }));
  using assumed = await openModel({ checkpoint: tiny.checkpoint, params });
  assert.equal(assumed.warnings.length, 1);
  assert.match(assumed.warnings[0]!, /--rope_scale_factor 8 for Llama 3.1 .*32 for Llama 3.2/);
  using given = await openModel({ checkpoint: tiny.checkpoint, params }, { ropeScaleFactor: 32 });
  assert.deepEqual(given.warnings, []);
});

Deno.test("a GGUF's rope_freqs becomes the Llama 3 scaling that gives those divisors", async () => {
  const path = new URL("../testdata/gguf/tiny_llama3.gguf", import.meta.url).pathname;
  using model = await openModel({ checkpoint: path });
  assert.equal(model.layout, "gguf");
  assert.deepEqual(model.config.ropeScaling, {
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalContextLength: 8192,
  });
  // llama.cpp divides theta^(-2j/hd) by the stored divisors: the same frequencies result.
  using gguf = await openCheckpoint(path);
  const divisors = await gguf.readFloat32("rope_freqs.weight");
  const frequencies = ropeFrequencies(model.config);
  for (let j = 0; j < divisors.length; j++) {
    const llamaCpp = 500000 ** (-2 * j / 64) / divisors[j]!;
    assert.ok(Math.abs(frequencies[j]! - llamaCpp) <= 1e-6 * llamaCpp, `frequency ${j}`);
  }
});

Deno.test("a GGUF of another architecture is refused, naming it", async () => {
  const path = `${await Deno.makeTempDir()}/qwen.gguf`;
  await Deno.writeFile(
    path,
    buildGguf({ metadata: [["general.architecture", { string: "qwen2" }]] }),
  );
  await assert.rejects(
    openModel({ checkpoint: path }),
    /architecture "qwen2" .*biases on the q, k/,
  );
  await assert.rejects(
    openModel({ checkpoint: path, params: tiny.params }),
    /GGUF file carries its own config/,
  );
});

Deno.test("export refuses rotate-half rows under Meta names, and --force overrides", async () => {
  const kjv = new URL("../models/kjv-tiny/", import.meta.url).pathname;
  const params = JSON.parse(await Deno.readTextFile(`${kjv}/params.json`));
  const headDim = params.dim / params.n_heads;
  using source = await openCheckpoint(`${kjv}/consolidated.00.pth`);
  const tensors = [];
  for (const { name, shape } of source.list()) {
    let values = await source.readFloat32(name);
    if (/attention\.w[qk]\.weight$/.test(name)) values = toRotateHalf(values, shape[0]!, headDim);
    tensors.push({ name, shape, values });
  }
  const dir = await Deno.makeTempDir();
  await writeSafetensors(`${dir}/renamed.safetensors`, tensors);
  await Deno.copyFile(`${kjv}/params.json`, `${dir}/params.json`);
  const output = `${dir}/out.llamane`;
  const options = {
    checkpoint: `${dir}/renamed.safetensors`,
    params: `${dir}/params.json`,
    output,
  };
  await assert.rejects(exportModel(options), QkLayoutError);
  await assert.rejects(Deno.stat(output), Deno.errors.NotFound);
  await exportModel({ ...options, force: true });
  assert.ok((await Deno.stat(`${output}/manifest.json`)).isFile);
  // The model as trained passes.
  await exportModel({
    checkpoint: `${kjv}/consolidated.00.pth`,
    params: `${kjv}/params.json`,
    output: `${dir}/kjv.llamane`,
  });
});

Deno.test("a truncated GGUF fails before output", async () => {
  const bytes = await Deno.readFile(new URL("../testdata/gguf/tiny_llama3.gguf", import.meta.url));
  const path = `${await Deno.makeTempDir()}/cut.gguf`;
  await Deno.writeFile(path, bytes.subarray(0, bytes.length - 1000));
  await refusesExport(path, CheckpointFormatError);
});

Deno.test("a config.json declaring more layers than any model is refused before anything is sized", async () => {
  const dir = await folder({ ...hfConfig, num_hidden_layers: 1e9 });
  await assert.rejects(
    openModel({ checkpoint: dir }),
    (error: Error) =>
      error instanceof ParamsError &&
      /nLayers \(.*num_hidden_layers.*\) is 1000000000, more than the 1024 any model needs/.test(
        error.message,
      ),
  );
});

Deno.test("a shard index that is not JSON, or not a file, is refused without quoting it", async () => {
  const dir = await folder(hfConfig, 2);
  const index = `${dir}/model.safetensors.index.json`;
  await Deno.writeTextFile(index, "root:SECRET-LINE");
  await assert.rejects(
    openModel({ checkpoint: dir }),
    (error: Error) =>
      error instanceof CheckpointFormatError && /invalid JSON: the index is not valid JSON/.test(
        error.message,
      ) && !error.message.includes("SECRET"),
  );
  await Deno.remove(index);
  await new Deno.Command("mkfifo", { args: [index] }).output();
  // A FIFO is no index: refused at once rather than waited on.
  await assert.rejects(openModel({ checkpoint: dir }), /neither model.safetensors nor/);
});
