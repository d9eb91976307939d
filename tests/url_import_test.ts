/**
 * llamane imported by URL, as from a web server or a CDN: the repository is served over HTTP
 * from 127.0.0.1 and used from an empty directory with no deno.json, by a script importing
 * mod.ts and by `deno run` of cli/main.ts. Nothing is left behind in the working directory.
 */

import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import { generate } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";
import { loadTokenizer } from "../tokenizer/mod.ts";
import { REPOSITORY_ROOT, serveFiles } from "../testing/file_server.ts";
import { LOCAL_CPU_LIBRARY, runDeno } from "../testing/deno_run.ts";

const PROMPT = "And God said";

/** The greedy continuation computed here, from the clone, to compare the remote runs against. */
async function localContinuation(maxNewTokens: number): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    const model = `${REPOSITORY_ROOT}/models/kjv-tiny`;
    await exportModel({
      checkpoint: `${model}/consolidated.00.pth`,
      params: `${model}/params.json`,
      output: `${dir}/kjv.llamane`,
    });
    using loaded = await loadModel(`${dir}/kjv.llamane`, { cpuLibrary: LOCAL_CPU_LIBRARY });
    const tokenizer = await loadTokenizer(`${dir}/kjv.llamane/tokenizer.model`);
    let text = PROMPT;
    for await (
      const event of generate(loaded, tokenizer, PROMPT, { temperature: 0, maxNewTokens })
    ) {
      text += event.text;
    }
    return text;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** An empty working directory, removed after `body`. */
async function inEmptyDirectory(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "llamane-user-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

// The library is given the way a remote user without a prebuilt download would give it.
const LIBRARY_ENV = { LLAMANE_CPU_LIB: LOCAL_CPU_LIBRARY };

Deno.test("a script importing mod.ts by URL exports the embedded model and generates", async () => {
  await using server = serveFiles(REPOSITORY_ROOT);
  await inEmptyDirectory(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      `import { embeddedModel, exportModel, generate, loadModel, loadTokenizer } from "${server.url}mod.ts";
      let downloadedTo;
      {
        await using model = await embeddedModel();
        downloadedTo = model.checkpoint;
        await exportModel({ checkpoint: model.checkpoint, params: model.params, output: "kjv.llamane" });
      }
      using loaded = await loadModel("kjv.llamane");
      const tokenizer = await loadTokenizer("kjv.llamane/tokenizer.model");
      let text = ${JSON.stringify(PROMPT)};
      for await (const event of generate(loaded, tokenizer, ${JSON.stringify(PROMPT)}, {
        temperature: 0,
        maxNewTokens: 24,
      })) text += event.text;
      console.log(JSON.stringify({ text, downloadedTo }));`,
    );
    const result = await runDeno([
      "run",
      `--allow-import=${server.url.host}`,
      `--allow-net=${server.url.host}`,
      "--allow-read",
      "--allow-write",
      "--allow-env=LLAMANE_CPU_LIB",
      `--allow-ffi=${LOCAL_CPU_LIBRARY}`,
      "main.ts",
    ], { cwd: dir, env: LIBRARY_ENV });
    assert.equal(result.code, 0, result.stderr);
    const { text, downloadedTo } = JSON.parse(result.stdout);
    assert.equal(text, await localContinuation(24));
    assert.ok(server.requests.includes("models/kjv-tiny/consolidated.00.pth"));
    await assert.rejects(Deno.stat(downloadedTo), Deno.errors.NotFound);
    assert.deepEqual(await entries(dir), ["kjv.llamane", "main.ts"]);
  });
});

Deno.test("deno run of the remote cli/main.ts demo works from an empty directory", async () => {
  await using server = serveFiles(REPOSITORY_ROOT);
  await inEmptyDirectory(async (dir) => {
    const flags = [
      `--allow-net=${server.url.host}`,
      "--allow-read",
      "--allow-write",
      "--allow-env=LLAMANE_CPU_LIB",
      `--allow-ffi=${LOCAL_CPU_LIBRARY}`,
    ];
    const temporary = await runDeno(["run", ...flags, `${server.url}cli/main.ts`, "demo"], {
      cwd: dir,
      env: LIBRARY_ENV,
    });
    assert.equal(temporary.code, 0, temporary.stderr);
    assert.match(temporary.stdout, /^exported .*kjv-tiny\.llamane in /m);
    assert.match(temporary.stdout, /^And God said \S.*\n/m);
    assert.deepEqual(await entries(dir), []);

    const named = await runDeno(
      ["run", ...flags, `${server.url}cli/main.ts`, "demo", "out/kjv.llamane"],
      { cwd: dir, env: LIBRARY_ENV },
    );
    assert.equal(named.code, 0, named.stderr);
    assert.match(named.stdout, /^exported out\/kjv\.llamane in /m);
    assert.deepEqual(await entries(`${dir}/out`), ["kjv.llamane"]);
  });
});
