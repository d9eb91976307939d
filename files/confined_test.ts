import assert from "node:assert/strict";
import { ConfinedDirectory, readRegularFile, UnsafeFileError } from "./confined.ts";
import { JsonSyntaxError, parseJson } from "./json.ts";

/** A directory holding `inside.txt`, with `outside.txt` beside it (a file the reads must not reach). */
async function withDirectory(
  fn: (dir: string, outside: string) => Promise<void> | void,
): Promise<void> {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/dir/sub`, { recursive: true });
    await Deno.writeTextFile(`${root}/dir/inside.txt`, "inside");
    await Deno.writeTextFile(`${root}/outside.txt`, "SECRET LINE");
    await fn(`${root}/dir`, `${root}/outside.txt`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function refuses(read: () => unknown, detail: RegExp): void {
  assert.throws(read, (error: Error) => {
    assert.ok(error instanceof UnsafeFileError, `${error.name}: ${error.message}`);
    assert.match(error.detail, detail);
    assert.ok(!error.message.includes("SECRET"), error.message);
    return true;
  });
}

Deno.test("ConfinedDirectory reads its files and follows links that stay inside", async () => {
  await withDirectory(async (dir) => {
    await Deno.symlink("../inside.txt", `${dir}/sub/up.txt`);
    const confined = ConfinedDirectory.open(dir);
    assert.equal(confined.readText("inside.txt", 100), "inside");
    assert.equal(confined.readText("sub/up.txt", 100), "inside");
    await Deno.writeTextFile(`${dir}/sub/own.txt`, "own");
    assert.equal(confined.directory("sub").readText("own.txt", 100), "own");
  });
});

Deno.test("ConfinedDirectory refuses links out of it, naming the link and never the target", async () => {
  await withDirectory(async (dir, outside) => {
    await Deno.symlink(outside, `${dir}/absolute.txt`);
    await Deno.symlink("../outside.txt", `${dir}/relative.txt`);
    await Deno.symlink("../..", `${dir}/sub/grandparent`);
    await Deno.symlink("..", `${dir}/sub/parent`);
    const confined = ConfinedDirectory.open(dir);
    for (const name of ["absolute.txt", "relative.txt", "sub/grandparent/outside.txt"]) {
      refuses(() => confined.read(name, 100), /resolves outside/);
      assert.throws(() => confined.read(name, 100), (e: Error) => !e.message.includes(outside));
    }
    // The sub-directory is confined to itself: its parent is out of reach from it.
    refuses(() => confined.directory("sub").read("parent/inside.txt", 100), /resolves outside/);
  });
});

Deno.test("ConfinedDirectory refuses names that climb out by their spelling", async () => {
  await withDirectory((dir) => {
    const confined = ConfinedDirectory.open(dir);
    for (const name of ["../outside.txt", "/etc/hostname", "sub/../../outside.txt", "", "a//b"]) {
      refuses(() => confined.read(name, 100), /not a name inside/);
    }
  });
});

Deno.test("reads refuse FIFOs and devices instead of blocking or reading forever", async () => {
  await withDirectory(async (dir) => {
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    await Deno.symlink("/dev/zero", `${dir}/zero`);
    refuses(() => readRegularFile(`${dir}/fifo`, 100), /is a FIFO/);
    refuses(() => readRegularFile("/dev/zero", 100), /is a device/);
    refuses(() => readRegularFile("/dev/urandom", 100), /is a device/);
    const confined = ConfinedDirectory.open(dir);
    refuses(() => confined.read("fifo", 100), /FIFO, expected a file/);
    refuses(() => confined.read("zero", 100), /outside/);
    refuses(() => confined.read("sub", 100), /directory, expected a file/);
  });
});

Deno.test("reads refuse files above their limit and missing files, by name", async () => {
  await withDirectory(async (dir) => {
    refuses(() => readRegularFile(`${dir}/inside.txt`, 5), /is 6 bytes, more than the 5 allowed/);
    assert.equal(readRegularFile(`${dir}/inside.txt`, 6).length, 6);
    refuses(() => readRegularFile(`${dir}/none`, 5), /is missing/);
    await Deno.symlink("none", `${dir}/dangling`);
    refuses(() => ConfinedDirectory.open(dir).read("dangling", 5), /is missing/);
    refuses(() => ConfinedDirectory.open(`${dir}/inside.txt`), /not a regular file|is not/);
  });
});

Deno.test("parseJson() reports the byte offset and never the text", () => {
  const cases: [string, number | undefined][] = [
    ["root:x:0:0:SECRET", undefined],
    ['{"é": 1, SECRET}', 10],
    ['{"a": 1', 7],
    ["", 0],
  ];
  for (const [text, offset] of cases) {
    assert.throws(() => parseJson(text), (error: Error) => {
      assert.ok(error instanceof JsonSyntaxError);
      assert.equal(error.offset, offset, text);
      assert.ok(!error.message.includes("SECRET"), error.message);
      return true;
    });
  }
  assert.deepEqual(parseJson('{"a": [1]}'), { a: [1] });
});
