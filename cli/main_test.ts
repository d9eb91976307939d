/**
 * The CLI as users run it: a subprocess with the narrowest permissions each command needs.
 */

import assert from "node:assert/strict";
import { TINY_PARAMS, writeTinyLlama } from "../testing/tiny_llama.ts";
import {
  huggingFaceConfig,
  huggingFaceTensors,
  writeHuggingFaceFolder,
} from "../testing/hugging_face_folder.ts";
import { llamane } from "./_testing.ts";

const tiny = await writeTinyLlama();

Deno.test("llamane info names the layout it found and where each config field came from", async () => {
  const folder = `${await Deno.makeTempDir()}/hf`;
  await writeHuggingFaceFolder(
    folder,
    huggingFaceConfig(TINY_PARAMS, false),
    await huggingFaceTensors(tiny.checkpoint, TINY_PARAMS.dim / TINY_PARAMS.n_heads),
  );
  const hf = await llamane([`--allow-read=${folder}`], "info", "-c", folder);
  assert.equal(hf.code, 0, hf.stderr);
  assert.match(hf.stdout, /layout\s+Hugging Face \(safetensors file\)/);
  assert.match(hf.stdout, /nKvHeads\s+2\s+config.json "num_key_value_heads"/);
  assert.match(hf.stdout, /trainedContext\s+256\s+config.json "max_position_embeddings"/);
  assert.match(hf.stdout, /q\/k row order consistent with the layout/);

  const gguf = new URL("../testdata/gguf/tiny_llama3.gguf", import.meta.url).pathname;
  const fromGguf = await llamane([`--allow-read=${gguf}`], "info", "-c", gguf);
  assert.equal(fromGguf.code, 0, fromGguf.stderr);
  assert.match(fromGguf.stdout, /layout\s+GGUF \(gguf file\)/);
  assert.match(fromGguf.stdout, /ropeScaling .*"factor":32.* recovered from the rope_freqs tensor/);

  const params = `${tiny.dir}/scaled.json`;
  await Deno.writeTextFile(params, JSON.stringify({ ...TINY_PARAMS, use_scaled_rope: true }));
  const meta = await llamane(
    [`--allow-read=${tiny.dir}`],
    "info",
    "-c",
    tiny.checkpoint,
    "-p",
    params,
  );
  assert.equal(meta.code, 0, meta.stderr);
  assert.match(
    meta.stderr,
    /warning: .*use_scaled_rope.*--rope_scale_factor 8 .*--rope_scale_factor 32/,
  );
});

Deno.test("llamane with no command prints the overview and exits 2", async () => {
  const result = await llamane([]);
  assert.equal(result.code, 2);
  assert.match(result.stdout, /Commands:\n[\s\S]*export[\s\S]*inspect/);
  assert.equal((await llamane([], "frobnicate")).code, 2);
});

Deno.test("llamane info prints the config and tensor table with read permission only", async () => {
  const result = await llamane(
    [`--allow-read=${tiny.dir}`],
    "info",
    "-c",
    tiny.checkpoint,
    "-p",
    tiny.params,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /nKvHeads\s+2/);
  assert.match(result.stdout, /layers\.1\.feed_forward\.w2\.weight\s+\[64, 192\]\s+F32/);
  assert.match(result.stdout, /all tensors match the config/);
});

Deno.test("llamane export names the missing permission before doing anything", async () => {
  const out = await Deno.makeTempDir();
  const result = await llamane(
    [`--allow-read=${tiny.dir}`],
    "export",
    "-c",
    tiny.checkpoint,
    "-p",
    tiny.params,
    "-o",
    `${out}/m.llamane`,
  );
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`run with --allow-write=${out}`));
  assert.deepEqual([...Deno.readDirSync(out)], []);

  const noRead = await llamane([], "info", "-c", tiny.checkpoint, "-p", tiny.params);
  assert.match(
    noRead.stderr,
    new RegExp(`Cannot read the params: permission denied, run with --allow-read=${tiny.params}`),
  );
});

Deno.test("llamane export and inspect run with read and write permission for their paths only", async () => {
  const out = await Deno.makeTempDir();
  const bundle = `${out}/m.llamane`;
  const exported = await llamane(
    [`--allow-read=${tiny.dir},${out}`, `--allow-write=${out}`],
    "export",
    "-c",
    tiny.checkpoint,
    "-p",
    tiny.params,
    "-o",
    bundle,
    "--input-len",
    "8",
    "--max_context_len=40",
    "--linear_quantize",
    "b4w",
  );
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(
    exported.stdout,
    /exported .*m\.llamane in [\d.]+ s\n {2}fp16, linear b4w, embedding and head 8,0, L 8, cache 32/,
  );
  assert.match(
    exported.stdout,
    /\n {2}relative squared error: linear [\d.]+ mean, [\d.]+ worst \(\S+\); embedding [\d.]+\n/,
  );

  const inspected = await llamane([`--allow-read=${bundle}`], "inspect", bundle);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.match(inspected.stdout, /blocks\.mlpackage {2}weights: .*int4/);
  assert.match(inspected.stdout, /in {3}mask fp16\[1, 8, 40\]/);
  assert.match(inspected.stdout, /out {2}logits fp16\[1, 8, 96\]/);
});

Deno.test("llamane export --num_chunks writes layer chunks, and lint reads them with read permission only", async () => {
  const out = await Deno.makeTempDir();
  const bundle = `${out}/chunked.llamane`;
  const exported = await llamane(
    [`--allow-read=${tiny.dir},${out}`, `--allow-write=${out}`],
    "export",
    "-c",
    tiny.checkpoint,
    "-p",
    tiny.params,
    "-o",
    bundle,
    "--num_chunks",
    "2",
  );
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, /blocks_0\.mlpackage .*\n {2}blocks_1\.mlpackage /);
  const linted = await llamane([`--allow-read=${bundle}`], "lint", bundle);
  assert.equal(linted.code, 0, linted.stderr);
  assert.match(linted.stdout, /blocks_1 .* 1 layers .*\n.*\n0 errors, 0 warnings\n$/);
  const json = await llamane([`--allow-read=${bundle}`], "lint", "--json", bundle);
  const report = JSON.parse(json.stdout);
  assert.deepEqual(report.programs.map((p: { piece: string }) => p.piece), [
    "embedding",
    "blocks_0",
    "blocks_1",
    "head",
  ]);
  const tooMany = await llamane(
    [`--allow-read=${tiny.dir},${out}`, `--allow-write=${out}`],
    "export",
    "-c",
    tiny.checkpoint,
    "-p",
    tiny.params,
    "-o",
    `${out}/three.llamane`,
    "--num_chunks",
    "3",
  );
  assert.equal(tooMany.code, 1);
  assert.match(tooMany.stderr, /num_chunks must be between 1 and the model's 2 layers, got 3/);
  assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), ["chunked.llamane"]);
});

Deno.test("llamane export refuses chunk flags that cannot be met, and writes nothing", async () => {
  const out = await Deno.makeTempDir();
  const cases: [string[], number, RegExp][] = [
    [["--num_chunks", "0"], 2, /Invalid --num_chunks: expected a whole number >= 1, got "0"/],
    [["--max_chunk_layers", "0"], 2, /Invalid --max_chunk_layers: expected a whole number >= 1/],
    [["--max_chunk_gb=-1"], 2, /Invalid --max_chunk_gb: expected a number >= 1e-9, got "-1"/],
    // A tiny layer holds about 60 KB of weights; a chunk of 10 KB cannot hold one.
    [
      ["--max_chunk_gb", "0.00001"],
      1,
      /one layer holds \d+ bytes of weights, more than a chunk may hold \(10000 bytes\): raise the chunk limit or quantize the weights/,
    ],
    [["--num_chunks", "2", "--no_graph_breaks"], 1, /drop --no_graph_breaks or --num_chunks/],
  ];
  for (const [flags, code, message] of cases) {
    const result = await llamane(
      [`--allow-read=${tiny.dir},${out}`, `--allow-write=${out}`],
      "export",
      "-c",
      tiny.checkpoint,
      "-p",
      tiny.params,
      "-o",
      `${out}/never.llamane`,
      ...flags,
    );
    assert.equal(result.code, code, `${flags.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.deepEqual([...Deno.readDirSync(out)], [], flags.join(" "));
  }
});

Deno.test("llamane export reports bad flags as usage errors", async () => {
  const result = await llamane(
    [`--allow-read=${tiny.dir}`],
    "export",
    "-c",
    tiny.checkpoint,
    "-p",
    tiny.params,
    "--input_len",
    "many",
  );
  assert.equal(result.code, 2);
  assert.match(result.stderr, /Invalid --input_len: expected a whole number/);
  const unknown = await llamane([], "export", "--frobnicate");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown option '--frobnicate'/);
});

Deno.test("llamane --version prints the version deno.json declares", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const result = await llamane([], "--version");
  assert.equal(result.code, 0);
  assert.equal(result.stdout, `llamane ${config.version}\n`);
});

Deno.test("llamane help <command> prints what llamane <command> --help prints", async () => {
  for (const name of ["export", "run", "inspect", "info", "tokenize", "demo"]) {
    const help = await llamane([], "help", name);
    const flag = await llamane([], name, "--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, new RegExp(`^Usage: llamane ${name}`));
    assert.equal(help.stdout, flag.stdout);
  }
  assert.equal((await llamane([], "help")).stdout, (await llamane([], "--help")).stdout);
  const unknown = await llamane([], "help", "frobnicate");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
});

Deno.test("llamane export --help shows the exporter's defaults and no stale remarks", async () => {
  const { stdout } = await llamane([], "export", "--help");
  assert.match(stdout, /--max_context_len N +cache slots plus one call \(default 1024\)/);
  assert.match(stdout, /--multifunction +prefill \(L tokens\) and decode/);
  assert.doesNotMatch(stdout, /not available/);
});

Deno.test("llamane info and export refuse a checkpoint or params that declare more than they hold", async () => {
  const dir = await Deno.makeTempDir();
  const repeated = new URL("../testdata/checkpoint/repeated_views.pth", import.meta.url).pathname;
  const huge = `${dir}/params.json`;
  const params = JSON.parse(await Deno.readTextFile(tiny.params));
  await Deno.writeTextFile(huge, JSON.stringify({ ...params, n_layers: 1e9 }));
  const cases: [string, string, RegExp][] = [
    [repeated, tiny.params, /repeats storage elements/],
    [tiny.checkpoint, huge, /"n_layers" is 1000000000, more than the 1024 any model needs/],
  ];
  for (const [checkpoint, paramsPath, message] of cases) {
    const read = `--allow-read=${tiny.dir},${dir},${repeated}`;
    const info = await llamane([read], "info", "-c", checkpoint, "-p", paramsPath);
    assert.equal(info.code, 1, info.stderr);
    assert.match(info.stderr, message);
    const exported = await llamane(
      [read, `--allow-write=${dir}`],
      "export",
      "-c",
      checkpoint,
      "-p",
      paramsPath,
      "-o",
      `${dir}/out.llamane`,
    );
    assert.equal(exported.code, 1, exported.stderr);
    assert.match(exported.stderr, message);
  }
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["params.json"]);
});
