import assert from "node:assert/strict";
import { Tiktoken } from "tiktoken";
import { LLAMA3_SPECIAL_TOKENS } from "./llama3.ts";
import { TiktokenTokenizer } from "./tiktoken_tokenizer.ts";

// Meta's pattern exactly as llama_models/llama3/tokenizer.py gives it (Rust regex syntax), so the
// oracle also checks our JavaScript translation of it.
const META_PATTERN = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}` +
  String.raw`| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

const root = new URL("../../", import.meta.url);
const ranksPath = new URL("testdata/tokenizer/kjv_tiktoken.model", root);
const ranksBytes = await Deno.readFile(ranksPath);
const corpus: readonly string[] = JSON.parse(
  await Deno.readTextFile(new URL("testdata/tokenizer/corpus.json", root)),
);
const tokenizer = TiktokenTokenizer.parse(ranksBytes, "kjv_tiktoken.model");
const rankCount = tokenizer.vocabSize - LLAMA3_SPECIAL_TOKENS.length;
// The npm package (Rust tiktoken compiled to WASM) loaded with the same ranks, pattern and
// Llama 3 special tokens, numbered from the rank count as Meta's tokenizer numbers them.
const oracle = new Tiktoken(
  new TextDecoder().decode(ranksBytes),
  Object.fromEntries(LLAMA3_SPECIAL_TOKENS.map((name, i) => [name, rankCount + i])),
  META_PATTERN,
);
// Python's bytes.decode("utf-8", errors="replace"), which Meta's decode() uses, replaces exactly
// as WHATWG's TextDecoder does; a leading U+FEFF is text.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

function oracleEncode(text: string, allowed: "all" | string[] = []): number[] {
  return [...oracle.encode(text, allowed, [])];
}

function assertAllEqual(label: string, cases: readonly [string, unknown, unknown][]): void {
  const failures = cases.filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b));
  const shown = failures.slice(0, 5).map(([input, actual, expected]) =>
    `  ${JSON.stringify(input)}:\n    got      ${JSON.stringify(actual)}\n` +
    `    expected ${JSON.stringify(expected)}`
  );
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${cases.length} ${label} differ from tiktoken:\n${shown.join("\n")}`,
  );
}

Deno.test("encode() matches tiktoken on the corpus", () => {
  assert.ok(corpus.length >= 2000);
  assertAllEqual(
    "encodings",
    corpus.map((text) => [text, tokenizer.encode(text), oracleEncode(text)]),
  );
});

Deno.test("encode() matches tiktoken on long and pathological inputs", () => {
  const verses = corpus.slice(10, 700).join(" ");
  const inputs = [
    verses.repeat(4),
    " ".repeat(30_000) + "x",
    "\n".repeat(10_000) + " \n  \t",
    "日本語".repeat(10_000),
    "a".repeat(40_000),
    "🙂".repeat(5_000),
    "1234567890".repeat(3_000),
  ];
  assertAllEqual(
    "encodings",
    inputs.map((text) => [text.slice(0, 40), tokenizer.encode(text), oracleEncode(text)]),
  );
});

Deno.test("encode() recognises special tokens only where allowed", () => {
  const withSpecials = corpus.filter((text) => text.includes("<|"));
  assert.ok(withSpecials.length > 50);
  const subset = ["<|eot_id|>", "<|begin_of_text|>", "<|reserved_special_token_5|>"];
  assertAllEqual(
    "encodings with all specials allowed",
    withSpecials.map((text) => [
      text,
      tokenizer.encode(text, { allowedSpecial: "all" }),
      oracleEncode(text, "all"),
    ]),
  );
  assertAllEqual(
    "encodings with some specials allowed",
    withSpecials.map((text) => [
      text,
      tokenizer.encode(text, { allowedSpecial: subset }),
      oracleEncode(text, subset),
    ]),
  );
  assertAllEqual(
    "encodings with no special allowed",
    withSpecials.map((text) => [
      text,
      tokenizer.encode(text),
      oracleEncode(text, []),
    ]),
  );
  assert.throws(
    () => tokenizer.encode("x", { allowedSpecial: ["<|not_a_token|>"] }),
    /"<\|not_a_token\|>" is not a Llama 3 special token/,
  );
});

Deno.test("decode() matches tiktoken's bytes read as UTF-8 with replacement", () => {
  const random = Array.from(
    { length: 500 },
    (_, i) =>
      Array.from({ length: 1 + (i % 13) }, (_, j) => (i * 7919 + j * 104729) % tokenizer.vocabSize),
  );
  const cases = [...corpus.map((text) => oracleEncode(text, "all")), ...random];
  assertAllEqual(
    "decodings",
    cases.map((ids) => [
      JSON.stringify(ids),
      tokenizer.decode(ids),
      utf8.decode(oracle.decode(new Uint32Array(ids))),
    ]),
  );
});

Deno.test("decoder() streams decode()'s text in whole characters", () => {
  for (const text of corpus) {
    const ids = tokenizer.encode(text);
    const decoder = tokenizer.decoder();
    const chunks = ids.map((id) => decoder.push(id));
    chunks.push(decoder.flush());
    for (const chunk of chunks) {
      assert.ok(chunk.isWellFormed());
      // Encoded text holds no malformed bytes: a U+FFFD not in the text would be a split character.
      assert.ok(!chunk.includes("\uFFFD") || text.includes("\uFFFD"), JSON.stringify(chunks));
    }
    assert.equal(chunks.join(""), text.toWellFormed());
  }
});

Deno.test("bosId, eosId and stopTokens follow Meta's special token numbering", () => {
  // Meta's file has 128000 ranks: <|begin_of_text|> is 128000, <|end_of_text|> 128001,
  // <|eom_id|> 128008, <|eot_id|> 128009; here they count from this file's rank count instead.
  assert.equal(tokenizer.bosId, rankCount + 0);
  assert.equal(tokenizer.eosId, rankCount + 1);
  assert.deepEqual(tokenizer.stopTokens, [rankCount + 1, rankCount + 9, rankCount + 8]);
  assert.equal(tokenizer.specialId("<|start_header_id|>"), rankCount + 6);
  assert.equal(tokenizer.specialId("<|python_tag|>"), rankCount + 10);
  assert.equal(tokenizer.specialId("<|reserved_special_token_245|>"), rankCount + 255);
  assert.deepEqual(tokenizer.encode("Amen", { bos: true, eos: true }), [
    rankCount,
    ...oracleEncode("Amen"),
    rankCount + 1,
  ]);
});

Deno.test("decode() rejects ids outside the vocabulary", () => {
  for (const id of [-1, tokenizer.vocabSize, 0.5]) {
    assert.throws(() => tokenizer.decode([id]), RangeError);
  }
});
