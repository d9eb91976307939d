/**
 * The prebuilt CPU library, end to end, as a user without a clone meets it: llamane's code and a
 * mirror of the release assets are served over HTTP from 127.0.0.1, the code's
 * ffi/native_assets.json recording the SHA-256 of the library built here, as a release would.
 * The first run downloads, verifies and caches the library; the next runs offline from the
 * cache; a tampered asset is refused; an unreachable mirror and a missing permission get clear
 * messages.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { assetName, BASE_URL_ENV } from "../ffi/prebuilt.ts";
import { REPOSITORY_ROOT, serveFiles } from "../testing/file_server.ts";
import { LOCAL_CPU_LIBRARY, makeDenoDir, runDeno } from "../testing/deno_run.ts";
import { VERSION } from "../version.ts";

const LIBRARY = await Deno.readFile(LOCAL_CPU_LIBRARY);
const ASSET = assetName("llamane_cpu");
const RECORD = new TextEncoder().encode(JSON.stringify({
  [VERSION]: { [ASSET]: createHash("sha256").update(LIBRARY).digest("hex") },
}));

/** The code as released: the repository with the asset hashes of this library recorded. */
function serveRelease() {
  return serveFiles(REPOSITORY_ROOT, new Map([["ffi/native_assets.json", RECORD]]));
}

/** A mirror of the release assets serving `bytes` as this platform's CPU library. */
function serveMirror(bytes: Uint8Array<ArrayBuffer>) {
  return serveFiles(REPOSITORY_ROOT, new Map([[`v${VERSION}/${ASSET}`, bytes]]));
}

/** A user's machine: an empty working directory, a user cache, a Deno cache. */
interface Machine {
  readonly home: string;
  readonly cachedLibrary: string;
  readonly denoDir: string;
}

async function withMachine(body: (machine: Machine) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "llamane-home-" });
  const denoDir = await makeDenoDir();
  try {
    await body({
      home,
      cachedLibrary: `${home}/.cache/llamane/native/${VERSION}/${ASSET}`,
      denoDir,
    });
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(denoDir, { recursive: true });
  }
}

/** `deno run` of the served cli/main.ts on `machine`, with the permissions the download needs. */
function llamane(machine: Machine, code: URL, mirror: URL, ...args: string[]) {
  const cache = `${machine.home}/.cache/llamane/native`;
  return runDeno([
    "run",
    `--allow-net=${code.host},${mirror.host}`,
    `--allow-read=${machine.home}`,
    `--allow-write=${machine.home}`,
    `--allow-env=HOME,XDG_CACHE_HOME,LLAMANE_CPU_LIB,${BASE_URL_ENV}`,
    `--allow-ffi=${cache}`,
    new URL("cli/main.ts", code).href,
    ...args,
  ], {
    cwd: machine.home,
    denoDir: machine.denoDir,
    env: {
      HOME: machine.home,
      XDG_CACHE_HOME: "",
      TMPDIR: machine.home,
      [BASE_URL_ENV]: mirror.href,
    },
  });
}

Deno.test("the library is downloaded and verified once, then used from the cache offline", async () => {
  await withMachine(async (machine) => {
    const code = serveRelease();
    const mirror = serveMirror(LIBRARY);
    const first = await llamane(machine, code.url, mirror.url, "demo", "kjv.llamane");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^And God said \S/m);
    assert.deepEqual(mirror.requests, [`v${VERSION}/${ASSET}`]);
    assert.deepEqual(await Deno.readFile(machine.cachedLibrary), LIBRARY);
    await code[Symbol.asyncDispose]();
    await mirror[Symbol.asyncDispose]();

    // Both servers are gone: the code comes from Deno's cache, the library from llamane's.
    const offline = await llamane(
      machine,
      code.url,
      mirror.url,
      ...["run", "-m", "kjv.llamane", "--prompt", "And God said", "--max_new_tokens", "8"],
    );
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stdout, /^And God said.+\S/);
  });
});

Deno.test("a tampered asset is refused and never cached", async () => {
  const tampered = LIBRARY.slice();
  tampered[tampered.length >> 1]! ^= 0x40;
  await using code = serveRelease();
  await using mirror = serveMirror(tampered);
  await withMachine(async (machine) => {
    const result = await llamane(machine, code.url, mirror.url, "demo");
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /Cannot download the CPU backend library from .*refusing to use it/,
    );
    await assert.rejects(Deno.stat(machine.cachedLibrary), Deno.errors.NotFound);
    const versionDir = `${machine.home}/.cache/llamane/native/${VERSION}`;
    assert.deepEqual(await Array.fromAsync(Deno.readDir(versionDir)), []);
  });
});

Deno.test("an unreachable mirror gets an offline message", async () => {
  await using code = serveRelease();
  const gone = serveMirror(LIBRARY);
  await gone[Symbol.asyncDispose]();
  await withMachine(async (machine) => {
    const result = await llamane(machine, code.url, gone.url, "demo");
    assert.equal(result.code, 1);
    assert.match(result.stderr, /the server cannot be reached .*; when offline, put the library/);
  });
});

Deno.test("without the permissions a download needs, every way in is named", async () => {
  await using code = serveRelease();
  await withMachine(async (machine) => {
    const result = await runDeno([
      "run",
      `--allow-net=${code.url.host}`,
      "--allow-read",
      "--allow-write",
      `--allow-env=HOME,XDG_CACHE_HOME`,
      new URL("cli/main.ts", code.url).href,
      "demo",
    ], {
      cwd: machine.home,
      denoDir: machine.denoDir,
      env: { HOME: machine.home, XDG_CACHE_HOME: "", TMPDIR: machine.home },
    });
    assert.equal(result.code, 1);
    const cache = `${machine.home}/.cache/llamane/native`;
    const lines = result.stderr.trim().split("\n");
    const first = lines.findIndex((line) => line.includes("Cannot find"));
    assert.match(
      lines[first]!,
      /^llamane demo: Cannot find the CPU backend library: any one of these provides it:$/,
    );
    assert.deepEqual(lines.slice(first + 1), [
      "  - pass its path as the cpuLibrary option",
      "  - set LLAMANE_CPU_LIB to its path and run with --allow-env=LLAMANE_CPU_LIB (without that " +
      "flag LLAMANE_CPU_LIB is not read)",
      "  - use the prebuilt library: to download " +
      `https://github.com/llamane/llamane/releases/download/v${VERSION}/${ASSET}, run with ` +
      `--allow-net=github.com --allow-ffi=${cache}/${VERSION}/${ASSET}`,
    ]);
  });
});
