/**
 * llamane imported by URL, as from a web server or a CDN, by a user with nothing but Deno: a
 * release is served over HTTP from 127.0.0.1 (the native library among its assets) and used from
 * an empty directory with no deno.json, by a script importing mod.ts, by `deno run` of
 * cli/main.ts and by `deno install`. Nothing is left behind in the working directory. A server
 * started from the URL serves its chat page.
 */

import assert from "node:assert/strict";
import { exportModel } from "../export/export_model.ts";
import { generate } from "../runtime/generate.ts";
import { loadModel } from "../runtime/load_model.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { CHAT_PAGE_HTML } from "../serve/chat_page.ts";
import { REPOSITORY_ROOT } from "../testing/file_server.ts";
import { LOCAL_CPU_LIBRARY, runDeno } from "../testing/deno_run.ts";
import { serveRelease, userMachine } from "../testing/user_machine.ts";
import { VERSION } from "../version.ts";

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

async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("a script importing mod.ts by URL exports the embedded model and generates", async () => {
  await using release = serveRelease();
  await using machine = await userMachine();
  await Deno.writeTextFile(
    `${machine.home}/main.ts`,
    `import { embeddedModel, exportModel, generate, loadModel, loadTokenizer } from "${release.url}mod.ts";
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
  const result = await machine.run(["main.ts"], { code: release.url });
  assert.equal(result.code, 0, result.stderr);
  const { text, downloadedTo } = JSON.parse(result.stdout);
  assert.equal(text, await localContinuation(24));
  assert.ok(release.requests.includes("models/kjv-tiny/consolidated.00.pth"));
  await assert.rejects(Deno.stat(downloadedTo), Deno.errors.NotFound);
  assert.deepEqual(await entries(machine.home), [".cache", "kjv.llamane", "main.ts"]);
});

Deno.test("deno run of the remote cli/main.ts demo works from an empty directory", async () => {
  await using release = serveRelease();
  await using machine = await userMachine();
  const main = new URL("cli/main.ts", release.url).href;
  const temporary = await machine.run([main, "demo"], { code: release.url });
  assert.equal(temporary.code, 0, temporary.stderr);
  assert.match(temporary.stdout, /^exported .*kjv-tiny\.llamane in /m);
  assert.match(temporary.stdout, /^And God said \S.*\n/m);
  assert.deepEqual(await entries(machine.home), [".cache"]);

  const named = await machine.run([main, "demo", "out/kjv.llamane"], { code: release.url });
  assert.equal(named.code, 0, named.stderr);
  assert.match(named.stdout, /^exported out\/kjv\.llamane in /m);
  assert.deepEqual(await entries(`${machine.home}/out`), ["kjv.llamane"]);
});

Deno.test("deno install of the remote cli/main.ts gives a working llamane command", async () => {
  await using release = serveRelease();
  await using machine = await userMachine();
  const main = new URL("cli/main.ts", release.url).href;
  const root = `${machine.home}/.deno`;
  // `deno install` writes a launcher that runs the URL with the permissions given here.
  const install = await runDeno(
    ["install", "--global", "--root", root, "--name", "llamane", "-A", main],
    { cwd: machine.home, denoDir: machine.denoDir, env: { HOME: machine.home } },
  );
  assert.equal(install.code, 0, install.stderr);
  const { code, stdout, stderr } = await new Deno.Command(`${root}/bin/llamane`, {
    args: ["--version"],
    cwd: machine.home,
    env: { HOME: machine.home, DENO_DIR: machine.denoDir },
  }).output();
  const text = new TextDecoder();
  assert.equal(code, 0, text.decode(stderr));
  assert.match(text.decode(stdout), new RegExp(`\\b${VERSION.replaceAll(".", "\\.")}\\b`));
});

Deno.test("serveBundle imported by URL serves the chat page from its own code", async () => {
  await using release = serveRelease();
  await using machine = await userMachine();
  const model = `${REPOSITORY_ROOT}/models/kjv-tiny`;
  await exportModel({
    checkpoint: `${model}/consolidated.00.pth`,
    params: `${model}/params.json`,
    output: `${machine.home}/kjv.llamane`,
  });
  await Deno.writeTextFile(
    `${machine.home}/main.ts`,
    `import { serveBundle } from "${release.url}mod.ts";
    const server = await serveBundle("kjv.llamane", { port: 0, log: () => {} });
    const response = await fetch(server.url + "/");
    console.log(JSON.stringify({ type: response.headers.get("content-type"), html: await response.text() }));
    await server.shutdown();`,
  );
  const result = await machine.run(["main.ts"], { code: release.url }, [
    `--allow-import=${release.url.host}`,
    // The release's host, and the port the server listens on.
    "--allow-net=127.0.0.1",
    `--allow-read=${machine.home}`,
    `--allow-write=${machine.home}`,
    "--allow-env",
    `--allow-ffi=${machine.home}`,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const { type, html } = JSON.parse(result.stdout);
  assert.equal(type, "text/html; charset=utf-8");
  assert.equal(html, CHAT_PAGE_HTML);
  // The page came from the module, not from a file read beside the code.
  assert.ok(release.requests.includes("serve/chat_page.ts"));
});
