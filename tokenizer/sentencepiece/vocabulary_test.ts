import assert from "node:assert/strict";
import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { BASE_PIECES, buildModel, BYTE_PIECES, type ModelSpec } from "./_model_builder.ts";
import { ModelType, PieceType } from "./model_proto.ts";
import { SentencePieceTokenizer } from "./sentencepiece_tokenizer.ts";

function parse(spec: ModelSpec): SentencePieceTokenizer {
  return SentencePieceTokenizer.parse(buildModel(spec), "x.model");
}

function assertFormatError(spec: ModelSpec, message: RegExp): void {
  assert.throws(() => parse(spec), (error: unknown) => {
    assert.ok(error instanceof TokenizerFormatError, String(error));
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("a minimal hand-built model encodes", () => {
  const tokenizer = parse({
    pieces: [...BASE_PIECES, { piece: "\u2581" }, { piece: "a" }, { piece: "\u2581a", score: 1 }],
  });
  assert.equal(tokenizer.vocabSize, 6);
  assert.equal(tokenizer.decode(tokenizer.encode("a a", { bos: true, eos: true })), "a a");
});

Deno.test("a model with a duplicate piece is rejected", () => {
  assertFormatError(
    { pieces: [...BASE_PIECES, { piece: "a" }, { piece: "a" }] },
    /^Cannot load tokenizer "x.model": duplicate piece at offset \d+ \(id 4\): id 3 is the/,
  );
});

Deno.test("a model without exactly one unknown piece is rejected", () => {
  assertFormatError({ pieces: BASE_PIECES.slice(1) }, /no unknown piece/);
  assertFormatError(
    { pieces: [...BASE_PIECES, { piece: "<unk2>", type: PieceType.unknown }] },
    /second unknown piece at offset \d+ \(id 3\): id 0 is one already/,
  );
});

Deno.test("a model with an empty piece or no pieces is rejected", () => {
  assertFormatError({ pieces: [...BASE_PIECES, { piece: "" }] }, /id 3\): it is empty/);
  assertFormatError({ pieces: [] }, /no pieces/);
});

Deno.test("byte pieces must match byte_fallback", () => {
  assertFormatError(
    { pieces: [...BASE_PIECES, BYTE_PIECES[0x41]!] },
    /byte piece at offset \d+ \(id \d+\) in a model trained without byte_fallback/,
  );
  assertFormatError(
    { pieces: [...BASE_PIECES, ...BYTE_PIECES.slice(0, 200)], byteFallback: true },
    /byte_fallback is on but the byte piece <0xC8> is missing/,
  );
  assertFormatError(
    { pieces: [...BASE_PIECES, { piece: "<0xZZ>", type: PieceType.byte }], byteFallback: true },
    /invalid byte piece at offset \d+ \(id \d+\): expected <0x00>..<0xFF>/,
  );
});

Deno.test("WORD and CHAR models and denormalizers are reported as unsupported", () => {
  for (const modelType of [ModelType.word, ModelType.char]) {
    assert.throws(() => parse({ pieces: BASE_PIECES, modelType }), UnsupportedTokenizerError);
  }
  assert.throws(
    () => parse({ pieces: BASE_PIECES, denormalizerCharsmap: new Uint8Array(8) }),
    /denormalization rules .* are not supported/,
  );
});
