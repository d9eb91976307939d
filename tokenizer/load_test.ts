import assert from "node:assert/strict";
import { MissingPermissionError } from "../permissions.ts";
import {
  loadTokenizer,
  MAX_TOKENIZER_BYTES,
  parseTokenizer,
  TokenizerFormatError,
  UnsupportedTokenizerError,
} from "./mod.ts";

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

Deno.test("parseTokenizer() rejects empty, JSON and unknown content, naming the file", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  assert.throws(
    () => parseTokenizer(new Uint8Array(0), { name: "a.model" }),
    /"a.model": the file is empty/,
  );
  assert.throws(
    () => parseTokenizer(encode(' \n{"version": "1.0"}'), { name: "tokenizer.json" }),
    (error: unknown) =>
      error instanceof UnsupportedTokenizerError &&
      /Hugging Face tokenizer.json/.test(error.message),
  );
  assert.throws(
    () => parseTokenizer(encode("GGUF\x03\x00\x00\x00"), { name: "m.gguf" }),
    (error: unknown) =>
      error instanceof TokenizerFormatError && error.offset === 0 &&
      error.message ===
        'Cannot load tokenizer "m.gguf": unrecognised format (the file starts with bytes ' +
          "47 47 55 46 03 00 00 00): expected a SentencePiece model (protobuf) or a tiktoken " +
          "ranks file (lines of base64 token and rank)",
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
