import assert from "node:assert/strict";
import {
  oracleDecode,
  oracleEncode,
  oracleTexts,
  type OracleTokenizer,
  oracleTokenizerDir,
} from "../../testing/hf_oracle.ts";
import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { loadTokenizer, parseTokenizer } from "../load.ts";

const texts = await oracleTexts();

function assertAllEqual(label: string, cases: readonly [string, unknown, unknown][]): void {
  const failures = cases.filter(([, a, b]) => JSON.stringify(a) !== JSON.stringify(b));
  const shown = failures.slice(0, 4).map(([input, actual, expected]) =>
    `  ${JSON.stringify(input)}:\n    got      ${JSON.stringify(actual)}\n` +
    `    expected ${JSON.stringify(expected)}`
  );
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${cases.length} ${label} differ from Python tokenizers:\n` +
      shown.join("\n"),
  );
}

for (const name of ["smollm2", "llama3", "llama2", "metaspace"] as OracleTokenizer[]) {
  Deno.test(`tokenizer.json (${name}) encodes and decodes as Python tokenizers does`, async () => {
    const dir = await oracleTokenizerDir(name);
    const oracle = await oracleEncode(dir, texts);
    const tokenizer = await loadTokenizer(`${dir}/tokenizer.json`);
    assert.equal(tokenizer.kind, "tokenizer.json");
    assertAllEqual(
      "encodings with special tokens",
      texts.map((
        text,
        i,
      ) => [text, tokenizer.encode(text, { allowedSpecial: "all" }), oracle[i]!.ids]),
    );
    assertAllEqual(
      "encodings of special tokens as text",
      texts.map((text, i) => [text, tokenizer.encode(text), oracle[i]!.plain]),
    );
    assertAllEqual(
      "encodings with BOS",
      texts.map((text, i) => [
        text,
        tokenizer.encode(text, { bos: tokenizer.bosId !== undefined, allowedSpecial: "all" }),
        oracle[i]!.with_special,
      ]),
    );
    assertAllEqual(
      "decodings",
      texts.map((text, i) => [text, tokenizer.decode(oracle[i]!.ids), oracle[i]!.decoded]),
    );
  });
}

/** A tokenizer.json document that tests break at will, any field to anything. */
// deno-lint-ignore no-explicit-any
type Document = Record<string, any>;

/** A small byte-level tokenizer.json, changed by `edit`. */
function tokenizerJson(edit: (json: Document) => void = () => {}): Uint8Array {
  const json: Document = {
    version: "1.0",
    added_tokens: [{ id: 3, content: "<|end|>", special: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel" },
    model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2, "<|end|>": 3 }, merges: ["a b"] },
  };
  edit(json);
  return new TextEncoder().encode(JSON.stringify(json));
}

Deno.test("a small tokenizer.json merges, reads special tokens only when allowed", () => {
  const tokenizer = parseTokenizer(tokenizerJson(), { name: "t.json" });
  assert.deepEqual(tokenizer.encode("abab"), [2, 2]);
  assert.deepEqual(tokenizer.encode("ab<|end|>", { allowedSpecial: ["<|end|>"] }), [2, 3]);
  assert.throws(() => tokenizer.encode("a", { bos: true }), /defines no beginning-of-sequence/);
  assert.throws(
    () => tokenizer.encode("a", { allowedSpecial: ["<|nope|>"] }),
    /"<\|nope\|>" is not a special token/,
  );
  assert.throws(() => tokenizer.decode([4]), /Cannot decode token 4/);
});

Deno.test("a corrupt or unsupported tokenizer.json is refused with the field named", () => {
  const refuse = (
    edit: (json: Document) => void,
    pattern: RegExp,
    type: new (...args: never[]) => Error = TokenizerFormatError,
  ) =>
    assert.throws(
      () => parseTokenizer(tokenizerJson(edit), { name: "t.json" }),
      (error: unknown) => {
        assert.ok(error instanceof type, String(error));
        assert.match((error as Error).message, /^Cannot load tokenizer "t.json": /);
        assert.match((error as Error).message, pattern);
        return true;
      },
    );
  const whole = tokenizerJson();
  assert.throws(
    () => parseTokenizer(whole.subarray(0, whole.length / 2), { name: "t.json" }),
    /"t.json": the file is not valid JSON \(.*\); is it complete\?/,
  );
  refuse(
    (json) => json.model.type = "WordPiece",
    /model type "WordPiece" is not supported/,
    UnsupportedTokenizerError,
  );
  refuse((json) => delete json.model, /model is missing, expected an object/);
  refuse(
    (json) => json.model.merges = ["a c"],
    /model.merges\[0\] needs "c", which is not in the vocabulary/,
  );
  refuse((json) => json.model.merges = [7], /model.merges\[0\] is 7, expected "left right"/);
  refuse(
    (json) => json.model.vocab.b = -1,
    /model.vocab.b is the number -1, expected a non-negative integer/,
  );
  refuse(
    (json) => json.model.vocab.b = 0,
    /model.vocab.b has id 0, which another token already has/,
  );
  refuse((json) => json.added_tokens[0].id = "3", /added_tokens\[0\].id is the string "3"/);
  refuse(
    (json) => json.pre_tokenizer = { type: "BertPreTokenizer" },
    /pre-tokenizer type "BertPreTokenizer"/,
    UnsupportedTokenizerError,
  );
  refuse(
    (json) => json.normalizer = { type: "Precompiled" },
    /normalizer type "Precompiled"/,
    UnsupportedTokenizerError,
  );
  refuse(
    (json) => json.decoder = { type: "WordPiece" },
    /decoder type "WordPiece"/,
    UnsupportedTokenizerError,
  );
  refuse(
    (json) => json.pre_tokenizer = { type: "Split", pattern: { Regex: "(" }, behavior: "Isolated" },
    /pre_tokenizer.pattern.Regex cannot be compiled/,
  );
  refuse(
    (json) =>
      json.pre_tokenizer = { type: "Split", pattern: { String: "x" }, behavior: "Sideways" },
    /pre_tokenizer.behavior is "Sideways", expected one of Removed, Isolated/,
  );
});

Deno.test("byte-level decoding of ids that break UTF-8 replaces as Python tokenizers does, streamed too", async () => {
  for (const name of ["smollm2", "llama3"] as OracleTokenizer[]) {
    const dir = await oracleTokenizerDir(name);
    const tokenizer = await loadTokenizer(`${dir}/tokenizer.json`);
    // Tokens of multi-byte characters cut short, reversed or interleaved with other tokens.
    const pieces = ["é", "日本", "🙂", "\u2581", "a b", "<|im_end|>", "\n"].map((text) =>
      tokenizer.encode(text, { allowedSpecial: "all" })
    );
    let state = 7;
    const random = (n: number) => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) % n;
    const sequences = Array.from({ length: 300 }, () => {
      const ids: number[] = [];
      for (let k = 1 + random(6); k > 0; k--) {
        const roll = random(10);
        if (roll < 3) ids.push(random(tokenizer.vocabSize));
        else {
          const piece = pieces[random(pieces.length)]!;
          const cut = roll < 6 ? piece.slice(0, 1 + random(piece.length)) : piece;
          ids.push(...(roll === 9 ? [...cut].reverse() : cut));
        }
      }
      return ids;
    });
    const oracle = await oracleDecode(dir, sequences);
    assert.ok(oracle.filter((text) => text.includes("\uFFFD")).length > 30, "few broken sequences");
    assertAllEqual(
      `${name} decodings`,
      sequences.map((ids, i) => [JSON.stringify(ids), tokenizer.decode(ids), oracle[i]]),
    );
    for (const ids of sequences) {
      const decoder = tokenizer.decoder();
      assert.equal(
        ids.map((id) => decoder.push(id)).join("") + decoder.flush(),
        tokenizer.decode(ids),
      );
    }
  }
});
