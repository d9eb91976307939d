import assert from "node:assert/strict";
import {
  oracleTexts,
  type OracleTokenizer,
  oracleTokenizerDir,
  smollm2Gguf,
} from "../../testing/hf_oracle.ts";
import {
  assertEncodesLikeLlamaCpp,
  assertSameEncodings,
  llamaCppTokenize,
} from "../../testing/llama_cpp_peer.ts";
import { buildGguf, memorySource, type TestValue } from "../../gguf/_testing.ts";
import { readGgufHeader } from "../../gguf/mod.ts";
import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { loadTokenizer } from "../load.ts";
import { ggufTokenizer } from "./gguf_tokenizer.ts";

type ErrorClass = new (...args: never[]) => Error;

const texts = await oracleTexts();

async function assertLikeLlamaCpp(path: string): Promise<void> {
  const tokenizer = await loadTokenizer(path);
  assert.equal(tokenizer.kind, "gguf");
  await assertEncodesLikeLlamaCpp(tokenizer, path, texts);
}

Deno.test("SmolLM2's GGUF vocabulary (gpt2, smollm) encodes as llama.cpp does", async () => {
  await assertLikeLlamaCpp(await smollm2Gguf());
});

for (const name of ["llama3", "llama2"] as OracleTokenizer[]) {
  Deno.test(`a GGUF vocabulary (${name}) encodes as llama.cpp does`, async () => {
    await assertLikeLlamaCpp(`${await oracleTokenizerDir(name)}/vocab.gguf`);
  });
}

Deno.test("SmolLM2's tokenizer.json built from its GGUF encodes as llama.cpp does", async () => {
  const oracle = await llamaCppTokenize(await smollm2Gguf(), texts);
  const tokenizer = await loadTokenizer(`${await oracleTokenizerDir("smollm2")}/tokenizer.json`);
  assertSameEncodings(
    "encodings with special tokens",
    texts.map((text, i) => [
      text,
      tokenizer.encode(text, { allowedSpecial: "all" }),
      oracle[i]!.special,
    ]),
  );
});

Deno.test("a GGUF without a usable vocabulary is refused, naming the key", async () => {
  const vocabulary: [string, TestValue][] = [
    ["tokenizer.ggml.model", { string: "gpt2" }],
    ["tokenizer.ggml.tokens", { strings: ["a", "b", "ab"] }],
    ["tokenizer.ggml.merges", { strings: ["a b"] }],
  ];
  const tokenizerOf = async (metadata: [string, TestValue][]) =>
    ggufTokenizer(await readGgufHeader(memorySource(buildGguf({ metadata }))), "m.gguf");
  const small = await tokenizerOf(vocabulary);
  assert.deepEqual(small.encode("abba"), [2, 1, 0]);
  assert.deepEqual(small.stopTokens, []);
  const refuse = async (metadata: [string, TestValue][], type: ErrorClass, pattern: RegExp) =>
    await assert.rejects(() => tokenizerOf(metadata), (error: unknown) => {
      assert.ok(error instanceof type, String(error));
      assert.match((error as Error).message, /^Cannot load tokenizer "m.gguf": /);
      assert.match((error as Error).message, pattern);
      return true;
    });
  await refuse([], TokenizerFormatError, /holds no vocabulary \(no tokenizer.ggml.model\)/);
  await refuse(
    [["tokenizer.ggml.model", { string: "bert" }]],
    UnsupportedTokenizerError,
    /tokenizer model "bert" is not supported/,
  );
  await refuse(
    [...vocabulary, ["tokenizer.ggml.pre", { string: "qwen2" }]],
    UnsupportedTokenizerError,
    /pre-tokenizer "qwen2" is not supported \(supported: default, gpt2, llama-bpe/,
  );
  await refuse(
    [...vocabulary.slice(0, 2), ["tokenizer.ggml.merges", { strings: ["a c"] }]],
    TokenizerFormatError,
    /"tokenizer.ggml.merges" item 0 \("a c"\) is not two tokens whose join is a token/,
  );
  await refuse(
    [...vocabulary, ["tokenizer.ggml.eos_token_id", { u32: 3 }]],
    TokenizerFormatError,
    /"tokenizer.ggml.eos_token_id" is 3, outside the vocabulary of 3 tokens/,
  );
  await refuse(
    [vocabulary[0]!, ["tokenizer.ggml.tokens", { string: "a" }]],
    TokenizerFormatError,
    /"tokenizer.ggml.tokens" is missing or not an array/,
  );
});
