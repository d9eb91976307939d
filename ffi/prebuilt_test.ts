import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { assetName, BASE_URL_ENV, platformName, prebuiltLibrary } from "./prebuilt.ts";
import { serveFiles } from "../testing/file_server.ts";
import { VERSION } from "../version.ts";

const LIBRARY = new TextEncoder().encode("not really a library, but bytes with a known hash");
const NAME = assetName("llamane_cpu");
const RECORD = { [VERSION]: { [NAME]: createHash("sha256").update(LIBRARY).digest("hex") } };

Deno.test("assetName() gives each released platform its file name", () => {
  assert.equal(assetName("llamane_cpu", "linux", "x86_64"), "libllamane_cpu-linux-x64.so");
  assert.equal(assetName("llamane_cpu", "linux", "aarch64"), "libllamane_cpu-linux-arm64.so");
  assert.equal(assetName("llamane_cpu", "darwin", "aarch64"), "libllamane_cpu-macos-arm64.dylib");
  assert.equal(assetName("llamane_cpu", "windows", "x86_64"), "llamane_cpu-windows-x64.dll");
  assert.equal(
    assetName("llamane_coreml", "darwin", "aarch64"),
    "libllamane_coreml-macos-arm64.dylib",
  );
  assert.equal(platformName("freebsd", "x86_64"), "freebsd-x64");
});

Deno.test("prebuiltLibrary() says when no asset is recorded for this version and machine", async () => {
  const lookup = await prebuiltLibrary("llamane_cpu", "the CPU backend library", {});
  assert.deepEqual(lookup, {
    unavailable: `none is recorded for llamane ${VERSION} on ${platformName()} (${NAME})`,
  });
});

/** Runs `body` with the user cache and the base URL pointed at test locations. */
async function withEnvironment(baseUrl: URL, body: (cache: string) => Promise<void>) {
  const cache = await Deno.makeTempDir();
  const variables = { XDG_CACHE_HOME: cache, HOME: cache, LOCALAPPDATA: cache };
  const saved = Object.fromEntries(
    [...Object.keys(variables), BASE_URL_ENV].map((name) => [name, Deno.env.get(name)]),
  );
  try {
    for (const [name, value] of Object.entries(variables)) Deno.env.set(name, value);
    Deno.env.set(BASE_URL_ENV, baseUrl.href);
    await body(Deno.build.os === "darwin" ? `${cache}/Library/Caches` : cache);
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
    await Deno.remove(cache, { recursive: true });
  }
}

Deno.test("prebuiltLibrary() downloads this version's asset into the user cache, then reuses it", async () => {
  await using server = serveFiles(
    await Deno.makeTempDir(),
    new Map([[`mirror/v${VERSION}/${NAME}`, LIBRARY]]),
  );
  await withEnvironment(new URL("mirror", server.url), async (cache) => {
    const expected = { path: `${cache}/llamane/native/${VERSION}/${NAME}` };
    assert.deepEqual(await prebuiltLibrary("llamane_cpu", "the CPU library", RECORD), expected);
    assert.deepEqual(await prebuiltLibrary("llamane_cpu", "the CPU library", RECORD), expected);
    assert.deepEqual(await Deno.readFile(expected.path), LIBRARY);
    assert.equal(server.requests.length, 1);
  });
});

Deno.test("prebuiltLibrary() names every flag the download needs when one is missing", async () => {
  const cache = await Deno.makeTempDir();
  const script = `
    import { prebuiltLibrary } from "${new URL("./prebuilt.ts", import.meta.url).href}";
    const lookup = await prebuiltLibrary("llamane_cpu", "the CPU library", ${
    JSON.stringify(RECORD)
  });
    console.log(JSON.stringify(lookup));
  `;
  await Deno.writeTextFile(`${cache}/lookup.ts`, script);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-config", "--allow-read", "--allow-env", `${cache}/lookup.ts`],
    env: { XDG_CACHE_HOME: cache, HOME: cache, LOCALAPPDATA: cache, [BASE_URL_ENV]: "" },
    stderr: "inherit",
  }).output();
  await Deno.remove(cache, { recursive: true });
  assert.equal(output.code, 0);
  const root = Deno.build.os === "darwin" ? `${cache}/Library/Caches` : cache;
  const directory = `${root}/llamane/native`;
  assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
    unavailable: `to download https://github.com/llamane/llamane/releases/download/v${VERSION}/` +
      `${NAME}, run with --allow-write=${directory} --allow-net=github.com ` +
      `--allow-ffi=${directory}/${VERSION}/${NAME}`,
  });
});
