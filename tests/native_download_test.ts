/**
 * The prebuilt CPU library, end to end, as a user without a clone meets it: a release of llamane
 * is served over HTTP from 127.0.0.1, its ffi/native_assets.json recording the SHA-256 of the
 * library built here and that library among its assets. The first run downloads, verifies and
 * caches the library; the next runs offline from the cache; a tampered asset is refused; an
 * unreachable server and a missing permission get clear messages.
 */

import assert from "node:assert/strict";
import { VERSION } from "../version.ts";
import { ASSET, LIBRARY, serveRelease, userMachine } from "../testing/user_machine.ts";

Deno.test("the library is downloaded and verified once, then used from the cache offline", async () => {
  await using machine = await userMachine();
  const release = serveRelease();
  const network = { code: release.url };
  const main = new URL("cli/main.ts", release.url).href;
  const first = await machine.run([main, "demo", "kjv.llamane"], network);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^And God said \S/m);
  assert.equal(release.requests.filter((path) => path.endsWith(ASSET)).length, 1);
  assert.deepEqual(await Deno.readFile(machine.cachedLibrary), LIBRARY);
  await release[Symbol.asyncDispose]();

  // The server is gone: the code comes from Deno's cache, the library from llamane's.
  const offline = await machine.run(
    [main, "run", "-m", "kjv.llamane", "--prompt", "And God said", "--max_new_tokens", "8"],
    network,
  );
  assert.equal(offline.code, 0, offline.stderr);
  assert.match(offline.stdout, /^And God said.+\S/);
});

Deno.test("a tampered asset is refused and never cached", async () => {
  const tampered = LIBRARY.slice();
  tampered[tampered.length >> 1]! ^= 0x40;
  await using release = serveRelease(tampered);
  await using machine = await userMachine();
  const result = await machine.run([new URL("cli/main.ts", release.url).href, "demo"], {
    code: release.url,
  });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /Cannot download the CPU backend library from .*refusing to use it/);
  const versionDir = `${machine.home}/.cache/llamane/native/${VERSION}`;
  assert.deepEqual(await Array.fromAsync(Deno.readDir(versionDir)), []);
});

Deno.test("an unreachable release server gets an offline message", async () => {
  await using release = serveRelease();
  const gone = serveRelease();
  await gone[Symbol.asyncDispose]();
  await using machine = await userMachine();
  const result = await machine.run([new URL("cli/main.ts", release.url).href, "demo"], {
    code: release.url,
    releases: gone.url,
  });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /the server cannot be reached .*; when offline, put the library/);
});

/** The lines of the not-found error a run of `demo` with `flags` ends with. */
async function notFoundLines(flags: string[]): Promise<string[]> {
  await using release = serveRelease();
  await using machine = await userMachine();
  const main = new URL("cli/main.ts", release.url).href;
  const result = await machine.run([main, "demo"], { code: release.url }, [
    `--allow-net=${release.url.host}`,
    "--allow-read",
    "--allow-write",
    ...flags,
  ]);
  assert.equal(result.code, 1);
  const lines = result.stderr.trim().split("\n");
  const first = lines.findIndex((line) => line.includes("Cannot find"));
  assert.equal(
    lines[first],
    "llamane demo: Cannot find the CPU backend library: any one of these provides it:",
  );
  return lines.slice(first + 1).map((line) => line.replaceAll(machine.home, "~"));
}

const OPTION = "  - pass its path as the cpuLibrary option";
const ENV =
  "  - set LLAMANE_CPU_LIB to its path and run with --allow-env=LLAMANE_CPU_LIB (without " +
  "that flag LLAMANE_CPU_LIB is not read)";

Deno.test("without the permissions a download needs, each way in is named with its flags", async () => {
  assert.deepEqual(await notFoundLines(["--allow-env=HOME,XDG_CACHE_HOME"]), [
    OPTION,
    ENV,
    "  - use the prebuilt library: to download " +
    `https://github.com/llamane/llamane/releases/download/v${VERSION}/${ASSET}, run with ` +
    `--allow-net=github.com --allow-ffi=~/.cache/llamane/native/${VERSION}/${ASSET}`,
  ]);
  assert.deepEqual(await notFoundLines([]), [
    OPTION,
    ENV,
    "  - use the prebuilt library: to download it, run with --allow-env=XDG_CACHE_HOME,HOME to " +
    "locate the user cache",
  ]);
});
