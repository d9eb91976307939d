import assert from "node:assert/strict";
import { collectAssets, RECORD_FILE, recordAssets } from "./native_assets.ts";
import { assetName, RELEASED_BUILDS } from "../../ffi/prebuilt.ts";
import { LOCAL_CPU_LIBRARY } from "../../testing/deno_run.ts";

/** SHA-256 of each file as coreutils' sha256sum computes it. */
async function sha256sum(directory: string, names: string[]): Promise<Record<string, string>> {
  const { stdout } = await new Deno.Command("sha256sum", { args: names, cwd: directory }).output();
  return Object.fromEntries(
    new TextDecoder().decode(stdout).trim().split("\n").map((line) => {
      const [hash, name] = line.split(/\s+\*?/);
      return [name!, hash!];
    }),
  );
}

async function withAssets(
  files: Record<string, string>,
  body: (directory: string) => Promise<void>,
): Promise<void> {
  const directory = await Deno.makeTempDir();
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${directory}/${name}`, text);
    }
    await body(directory);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

const LINUX = "libllamane_cpu-linux-x64.so";
const BRIDGE = "libllamane_coreml-macos-arm64.dylib";

Deno.test("recordAssets() adds each asset's SHA-256 under the version", async () => {
  await withAssets({ [LINUX]: "linux bytes", [BRIDGE]: "bridge bytes" }, async (directory) => {
    const older = { "0.0.9": { [LINUX]: "a".repeat(64) } };
    const record = await recordAssets(older, directory, "1.2.3");
    assert.deepEqual(record, { ...older, "1.2.3": await sha256sum(directory, [BRIDGE, LINUX]) });
    assert.deepEqual(await recordAssets(record, directory, "1.2.3"), record);
  });
});

Deno.test("recordAssets() refuses unknown files and changed assets of a recorded version", async () => {
  await withAssets({ "libllamane_cpu-linux-riscv64.so": "?" }, async (directory) => {
    await assert.rejects(recordAssets({}, directory, "1.2.3"), /it is not a released asset/);
  });
  await withAssets({ [LINUX]: "rebuilt bytes" }, async (directory) => {
    const record = { "1.2.3": { [LINUX]: "b".repeat(64) } };
    await assert.rejects(
      recordAssets(record, directory, "1.2.3"),
      /a published version's assets never change/,
    );
  });
});

Deno.test("collectAssets() copies this machine's build under its asset name", async () => {
  const released = RELEASED_BUILDS.filter((b) =>
    b.library === "llamane_cpu" && b.os === Deno.build.os && b.arch === Deno.build.arch
  );
  const directory = await Deno.makeTempDir();
  try {
    const names = await collectAssets(directory);
    assert.deepEqual(names, released.map(() => assetName("llamane_cpu")));
    for (const name of names) {
      assert.deepEqual(
        await Deno.readFile(`${directory}/${name}`),
        await Deno.readFile(LOCAL_CPU_LIBRARY),
      );
    }
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("the committed record holds only released assets with well-formed hashes", async () => {
  const record: Record<string, Record<string, string>> = JSON.parse(
    await Deno.readTextFile(RECORD_FILE),
  );
  const known = new Set(RELEASED_BUILDS.map((b) => assetName(b.library, b.os, b.arch)));
  for (const [version, assets] of Object.entries(record)) {
    assert.match(version, /^\d+\.\d+\.\d+/);
    for (const [name, hash] of Object.entries(assets)) {
      assert.ok(known.has(name), name);
      assert.match(hash, /^[0-9a-f]{64}$/);
    }
  }
});
