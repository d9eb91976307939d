import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CACHE_DIR_ENV, compiledModelPath, defaultCacheDir, packageHash } from "./coreml_cache.ts";

async function writePackage(files: Record<string, string>): Promise<string> {
  const dir = `${await Deno.makeTempDir()}/piece.mlpackage`;
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${dir}/${path}`.replace(/\/[^/]+$/, ""), { recursive: true });
    await Deno.writeTextFile(`${dir}/${path}`, text);
  }
  return dir;
}

const layout = {
  "Manifest.json": "{}",
  "Data/com.apple.CoreML/model.mlmodel": "program",
  "Data/com.apple.CoreML/weights/weight.bin": "weights",
};

Deno.test("packageHash() is SHA-256 over sorted relative paths, lengths and bytes", async () => {
  const dir = await writePackage(layout);
  const expected = createHash("sha256");
  for (const path of Object.keys(layout).sort()) {
    const text = layout[path as keyof typeof layout];
    expected.update(`${path}\0${text.length}\0`).update(text);
  }
  assert.equal(await packageHash(dir), expected.digest("hex"));
  assert.equal(await compiledModelPath(dir, "/cache"), `/cache/${await packageHash(dir)}.mlmodelc`);
});

Deno.test("packageHash() follows the content: same files elsewhere agree, one changed byte differs", async () => {
  const a = await writePackage(layout);
  const b = await writePackage(layout);
  assert.equal(await packageHash(a), await packageHash(b));
  const before = await packageHash(a);
  const weights = `${a}/Data/com.apple.CoreML/weights/weight.bin`;
  await Deno.writeTextFile(weights, "weightz");
  // Same size and inode: only the modification time tells the process-wide memo of the change.
  await Deno.utime(weights, 0, 1);
  assert.notEqual(await packageHash(a), before);
});

Deno.test("packageHash() refuses links out of the package and special files in it", async () => {
  const outside = await Deno.makeTempFile();
  const cases: [(dir: string) => Promise<unknown>, RegExp][] = [
    [(dir) => Deno.symlink(outside, `${dir}/Data/extra.bin`), /extra.bin": it resolves outside/],
    [(dir) => Deno.symlink("/dev/zero", `${dir}/Data/zero.bin`), /zero.bin": it resolves outside/],
    [
      (dir) => new Deno.Command("mkfifo", { args: [`${dir}/Data/fifo.bin`] }).output(),
      /fifo.bin": it is a FIFO/,
    ],
  ];
  for (const [tamper, message] of cases) {
    const dir = await writePackage(layout);
    await tamper(dir);
    await assert.rejects(() => packageHash(dir), message);
  }
});

Deno.test({
  name: "defaultCacheDir() takes LLAMANE_COREML_CACHE, else the macOS user cache folder",
  permissions: { env: true },
  async fn() {
    const saved = Deno.env.get(CACHE_DIR_ENV);
    try {
      Deno.env.set(CACHE_DIR_ENV, "/var/cache/llamane");
      assert.equal(await defaultCacheDir(), "/var/cache/llamane");
      Deno.env.delete(CACHE_DIR_ENV);
      assert.equal(
        await defaultCacheDir(),
        `${Deno.env.get("HOME")}/Library/Caches/llamane/coreml`,
      );
    } finally {
      if (saved !== undefined) Deno.env.set(CACHE_DIR_ENV, saved);
    }
  },
});

Deno.test({
  name: "defaultCacheDir() without env access says which variable and flag to use",
  permissions: { env: false },
  async fn() {
    await assert.rejects(
      defaultCacheDir(),
      /set LLAMANE_COREML_CACHE and run with --allow-env=LLAMANE_COREML_CACHE, or pass cacheDir/,
    );
  },
});
