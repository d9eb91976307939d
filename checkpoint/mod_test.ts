import assert from "node:assert/strict";
import { MissingPermissionError } from "../permissions.ts";
import { CheckpointFormatError } from "./errors.ts";
import { checkpointFormat, openCheckpoint } from "./mod.ts";
import { fixture, withTempFile } from "./_testing.ts";

const unsupported = (pattern: RegExp) => (error: Error) => {
  assert.ok(error instanceof CheckpointFormatError, `${error.name}: ${error.message}`);
  assert.match(error.message, /supported formats are PyTorch \.pth .*, \.safetensors and GGUF/);
  assert.match(error.message, pattern);
  return true;
};

Deno.test("openCheckpoint() chooses the reader from the file's first bytes, not its name", async () => {
  const bytes = await Deno.readFile(fixture("dtypes.safetensors"));
  await withTempFile(bytes, async (path) => {
    using source = await openCheckpoint(path);
    assert.equal(source.info("bf16")?.dtype, "BF16");
  });
});

Deno.test("openCheckpoint() reads a GGUF file as one, whatever its name", async () => {
  const bytes = await Deno.readFile(new URL("../testdata/gguf/types.gguf", import.meta.url));
  await withTempFile(bytes, async (path) => {
    assert.equal(await checkpointFormat(path), "gguf");
    using source = await openCheckpoint(path);
    assert.equal(source.info("matrix.Q4_K")?.dtype, "Q4_K");
  });
});

Deno.test("openCheckpoint() rejects other formats, naming the supported ones", async () => {
  const ggml = new TextEncoder().encode("lmgg\x03\x00\x00\x00\x00\x00\x00\x00");
  await withTempFile(
    ggml,
    (path) => assert.rejects(openCheckpoint(path), unsupported(/first bytes 6c 6d 67 67/)),
  );
  await withTempFile(
    new Uint8Array(),
    (path) => assert.rejects(openCheckpoint(path), unsupported(/the file is empty/)),
  );
  // torch.save before PyTorch 1.6 wrote a bare pickle stream.
  const legacy = new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9]);
  await withTempFile(
    legacy,
    (path) => assert.rejects(openCheckpoint(path), unsupported(/pre-1\.6 torch\.save format/)),
  );
});

Deno.test("openCheckpoint() reports a missing file in its own words", async () => {
  await assert.rejects(
    openCheckpoint(fixture("no_such_file.pth")),
    (error: Error) =>
      error instanceof Deno.errors.NotFound &&
      /Cannot read checkpoint ".*no_such_file\.pth": no such file/.test(error.message),
  );
});

Deno.test("openCheckpoint() rejects a directory", async () => {
  await assert.rejects(
    openCheckpoint(fixture(".")),
    (error: Error) =>
      error instanceof CheckpointFormatError && /not a regular file/.test(error.message),
  );
});

Deno.test("openCheckpoint() rejects a FIFO instead of waiting for a writer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await new Deno.Command("mkfifo", { args: [`${dir}/model.pth`] }).output();
    await assert.rejects(
      openCheckpoint(`${dir}/model.pth`),
      (error: Error) =>
        error instanceof CheckpointFormatError && /not a regular file/.test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "openCheckpoint() checks read permission first and names the flag",
  permissions: { read: [fixture("views.pth")] },
  fn: async () => {
    const path = fixture("dtypes.pth");
    await assert.rejects(openCheckpoint(path), (error: Error) => {
      assert.ok(error instanceof MissingPermissionError);
      assert.equal(error.flag, `--allow-read=${path}`);
      return true;
    });
  },
});

Deno.test("close() releases the file and may be called twice", async () => {
  const source = await openCheckpoint(fixture("views.pth"));
  source.close();
  source.close();
  await assert.rejects(source.readFloat32("base"));
});
