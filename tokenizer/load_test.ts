import assert from "node:assert/strict";
import { MissingPermissionError } from "../permissions.ts";
import { loadTokenizer } from "./load.ts";
import { MAX_TOKENIZER_BYTES, parseTokenizer, TokenizerFormatError } from "./mod.ts";

const root = new URL("../", import.meta.url);
const kjvPath = new URL("models/kjv-tiny/tokenizer.model", root).pathname;
const ranksPath = new URL("testdata/tokenizer/kjv_tiktoken.model", root).pathname;

Deno.test("loadTokenizer() tells SentencePiece and tiktoken files apart by content", async () => {
  const spm = await loadTokenizer(kjvPath);
  assert.equal(spm.kind, "sentencepiece");
  const tiktoken = await loadTokenizer(ranksPath);
  assert.equal(tiktoken.kind, "tiktoken");
  assert.equal(spm.decode(spm.encode("Amen.")), "Amen.");
  assert.equal(tiktoken.decode(tiktoken.encode("Amen.")), "Amen.");
});

Deno.test("parseTokenizer() rejects empty and unknown content, naming the file", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  assert.throws(
    () => parseTokenizer(new Uint8Array(0), { name: "a.model" }),
    /"a.model": the file is empty/,
  );
  assert.throws(
    () => parseTokenizer(encode(' \n{"version": "1.0"}'), { name: "tokenizer.json" }),
    (error: unknown) =>
      error instanceof TokenizerFormatError &&
      /"tokenizer.json": model is missing/.test(error.message),
  );
  assert.throws(
    () => parseTokenizer(encode("PK\x03\x04\x00\x00\x00\x00"), { name: "m.pth" }),
    (error: unknown) =>
      error instanceof TokenizerFormatError && error.offset === 0 &&
      error.message ===
        'Cannot load tokenizer "m.pth": unrecognised format: expected a SentencePiece model ' +
          "(protobuf), a tiktoken ranks file (lines of base64 token and rank), a tokenizer.json " +
          "or a GGUF",
  );
  assert.throws(
    () => parseTokenizer(encode("GGUF\x03\x00\x00\x00"), { name: "m.gguf" }),
    (error: unknown) =>
      error instanceof TokenizerFormatError && error.offset === 8 &&
      /"m.gguf": truncated file: tensor count at offset 8/.test(error.message),
  );
});

Deno.test({
  name: "loadTokenizer() without read permission names the flag to add",
  permissions: { read: false },
  async fn() {
    await assert.rejects(() => loadTokenizer(kjvPath), (error: unknown) => {
      assert.ok(error instanceof MissingPermissionError);
      assert.equal(error.flag, `--allow-read=${kjvPath}`);
      return true;
    });
  },
});

Deno.test("loadTokenizer() reports a missing file or a directory, and refuses a huge file", async () => {
  await assert.rejects(
    () => loadTokenizer("/nonexistent/tokenizer.model"),
    /Cannot load tokenizer "\/nonexistent\/tokenizer.model": no such file/,
  );
  await assert.rejects(() => loadTokenizer(new URL("models/", root).pathname), /is a directory/);
  const huge = await Deno.makeTempFile({ suffix: ".model" });
  try {
    // A sparse file: the size is what matters, and nothing is read.
    await Deno.truncate(huge, MAX_TOKENIZER_BYTES + 1);
    await assert.rejects(() => loadTokenizer(huge), /is it the checkpoint\?/);
  } finally {
    await Deno.remove(huge);
  }
});

Deno.test("loadTokenizer() refuses a FIFO and a device instead of blocking or reading forever", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await new Deno.Command("mkfifo", { args: [`${dir}/tokenizer.model`] }).output();
    await assert.rejects(() => loadTokenizer(`${dir}/tokenizer.model`), /the file is a FIFO/);
    await assert.rejects(() => loadTokenizer("/dev/zero"), /the file is a device/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer errors name the file and offset, never a line of its contents", () => {
  // A ranks file whose second line is someone's secret, as a link to another file would give.
  const bytes = new TextEncoder().encode("YQ== 0\nadmin:SECRET-PASSWORD\n");
  assert.throws(
    () => parseTokenizer(bytes, { name: "t.model" }),
    (error: unknown) =>
      error instanceof TokenizerFormatError && /line 2 \(offset 7\)/.test(error.message) &&
      !error.message.includes("SECRET"),
  );
  const binary = new TextEncoder().encode("\x7fELF SECRET");
  assert.throws(
    () => parseTokenizer(binary, { name: "t.model" }),
    (error: unknown) => error instanceof TokenizerFormatError && !error.message.includes("7f"),
  );
});
