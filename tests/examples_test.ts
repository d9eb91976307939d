/**
 * The scripts of examples/, copied into an empty directory as a user copies them, with
 * `@llamane/llamane` and its entry points mapped to the repository served over HTTP from
 * 127.0.0.1 (standing in for `deno add jsr:@llamane/llamane`), on a machine with nothing but Deno.
 */

import assert from "node:assert/strict";
import { REPOSITORY_ROOT } from "../testing/file_server.ts";
import { serveRelease, userMachine } from "../testing/user_machine.ts";

const EXAMPLES = `${REPOSITORY_ROOT}/examples`;

Deno.test("every example runs against llamane imported over HTTP", async (t) => {
  await using release = serveRelease();
  await using machine = await userMachine();
  // What `deno add` would map: the package name and each of its entry points.
  const { name, exports } = JSON.parse(await Deno.readTextFile(`${REPOSITORY_ROOT}/deno.json`));
  const imports = Object.fromEntries(
    Object.entries(exports as Record<string, string>).map(([entry, path]) => [
      `${name}${entry.slice(1)}`,
      new URL(path, release.url).href,
    ]),
  );
  await Deno.writeTextFile(`${machine.home}/import_map.json`, JSON.stringify({ imports }));
  /** Runs an example with the permissions a careful user grants, or exactly `flags`. */
  const runWith = async (
    flags: readonly string[] | undefined,
    example: string,
    ...args: string[]
  ) => {
    await Deno.copyFile(`${EXAMPLES}/${example}`, `${machine.home}/${example}`);
    const result = await machine.run(
      ["--import-map=import_map.json", example, ...args],
      { code: release.url },
      flags,
    );
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };
  const run = (example: string, ...args: string[]) => runWith(undefined, example, ...args);
  const tested = new Set<string>();
  const step = (example: string, body: () => Promise<void>) =>
    t.step(example, async () => {
      tested.add(example);
      await body();
    });

  await step("export_and_generate.ts", async () => {
    assert.match(await run("export_and_generate.ts", "kjv.llamane"), /^And God said \S/);
  });
  await step("lookahead.ts", async () => {
    const output = await run("lookahead.ts", "kjv.llamane");
    assert.match(output, /^In the beginning \S/);
    assert.match(output, /^same tokens as greedy: true$/m);
    const [, greedy, lookahead] = /greedy (\d+), lookahead (\d+)/.exec(output)!;
    assert.ok(Number(lookahead) < Number(greedy), output);
  });
  await step("inspect.ts", async () => {
    const output = await run("inspect.ts", "kjv.llamane");
    for (const piece of ["embedding", "blocks", "head"]) {
      assert.match(output, new RegExp(`^${piece}\\.mlpackage: .*int\\d \\d+ B`, "m"));
    }
  });
  await step("chat.ts", async () => {
    const output = await run("chat.ts", "kjv.llamane");
    const prefills = [...output.matchAll(/\(prefilled (\d+) tokens\)/g)].map((m) => Number(m[1]));
    assert.equal(prefills.length, 2, output);
    // The second turn feeds only its own line: not the first turn's line and 16-token answer again.
    assert.ok(prefills[1]! < prefills[0]! + 16, output);
    assert.match(output, /^> In the beginning\n\S/);
  });
  await step("serve.ts", async () => {
    // A server also listens on loopback, which the other examples never do.
    const output = await runWith(["-A"], "serve.ts", "kjv.llamane");
    assert.match(output, /^And God said \S/);
    assert.match(output, /^\(4 prompt tokens, 24 generated\)$/m);
  });
  await step("manifest.ts", async () => {
    const output = await run("manifest.ts", "kjv.llamane");
    const params = JSON.parse(
      await Deno.readTextFile(`${REPOSITORY_ROOT}/models/kjv-tiny/params.json`),
    );
    assert.match(output, new RegExp(`dim ${params.dim}, ${params.n_layers} layers`));
    assert.match(output, /^blocks\.main \(L 32\)\n {2}in: {2}hidden_0 fp16\[1,32,\d+\] mask/m);
  });

  const scripts = (await Array.fromAsync(Deno.readDir(EXAMPLES))).map((e) => e.name);
  assert.deepEqual(scripts.filter((name) => !tested.has(name)), [], "examples without a test");
});
