/**
 * `deno task build:native` (ffi/cpu/build.sh): a missing cargo gets a hint to install Rust, and a
 * build shows cargo's progress instead of running silently.
 */

import assert from "node:assert/strict";

const SCRIPT = new URL("../ffi/cpu/build.sh", import.meta.url).pathname;

/** The absolute path of a program on this process's PATH. */
function which(program: string): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      Deno.statSync(`${dir}/${program}`);
      return `${dir}/${program}`;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  throw new Deno.errors.NotFound(`${program} is not on PATH`);
}

async function build(env: Record<string, string>) {
  const { code, stderr } = await new Deno.Command(which("bash"), {
    args: [SCRIPT],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code, stderr: new TextDecoder().decode(stderr) };
}

Deno.test("build:native without cargo on PATH says how to install Rust", async () => {
  const noCargo = await Deno.makeTempDir();
  await Deno.symlink(which("dirname"), `${noCargo}/dirname`);
  const { code, stderr } = await build({ PATH: noCargo });
  assert.equal(code, 1);
  assert.match(stderr, /cargo, Rust's build tool, is not on PATH/);
  assert.match(stderr, /https:\/\/rustup\.rs/);
  assert.match(stderr, /deno task build:native/);
});

Deno.test("build:native announces the build and shows cargo's progress", async () => {
  const { code, stderr } = await build({});
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^Building the CPU backend library/);
  assert.match(stderr, /Finished `release` profile/);
});
