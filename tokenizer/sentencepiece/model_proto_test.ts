import assert from "node:assert/strict";
import fc from "fast-check";
import { BinaryWriter, WireType } from "../../protobuf/wire.ts";
import { TokenizerFormatError, UnsupportedTokenizerError } from "../errors.ts";
import { BASE_PIECES, buildModel } from "./_model_builder.ts";
import { parseModelProto } from "./model_proto.ts";
import { SentencePieceTokenizer } from "./sentencepiece_tokenizer.ts";

const root = new URL("../../", import.meta.url);
const kjvPath = "models/kjv-tiny/tokenizer.model";
const kjv = await Deno.readFile(new URL(kjvPath, root));
const unigram = await Deno.readFile(new URL("testdata/tokenizer/spm_unigram.model", root));

Deno.test("parseModelProto() reads the pieces sentencepiece wrote", async () => {
  // The oracle's piece list comes from sentencepiece's own id_to_piece().
  const oracle = JSON.parse(
    await Deno.readTextFile(new URL("testdata/tokenizer/spm_oracle_kjv.json", root)),
  );
  const proto = parseModelProto(kjv, kjvPath);
  assert.deepEqual(proto.pieces.map((p) => p.piece), oracle.pieces);
  assert.equal(proto.normalizerSpec.name, "identity");
  assert.equal(proto.trainerSpec.byteFallback, true);
});

Deno.test("parseModelProto() names the field and offset where a truncated file ends", () => {
  const piece = parseModelProto(kjv, kjvPath).pieces[300]!;
  const size = piece.offset + 3;
  assert.throws(
    () => parseModelProto(kjv.subarray(0, size), kjvPath),
    (error: unknown) => {
      assert.ok(error instanceof TokenizerFormatError);
      assert.equal(error.offset, piece.offset);
      assert.match(
        error.message,
        new RegExp(
          `^Cannot load tokenizer "${kjvPath}": truncated protobuf: field 1 at offset ` +
            `${piece.offset} \\(length \\d+\\) runs past the end of the file \\(size ${size}\\)$`,
        ),
      );
      return true;
    },
  );
});

Deno.test("parseModelProto() accepts a prefix only where a field ends, else says truncated", () => {
  const ends = new Set(parseModelProto(kjv, kjvPath).pieces.map((p) => p.offset));
  for (let size = 1; size < kjv.length; size += 7) {
    try {
      parseModelProto(kjv.subarray(0, size), kjvPath);
      assert.ok(ends.has(size), `a cut at ${size} inside a field parsed`);
    } catch (error) {
      assert.ok(error instanceof TokenizerFormatError, String(error));
      assert.match(error.message, /truncated protobuf|invalid protobuf/);
      assert.ok(error.offset >= 0 && error.offset < size);
    }
  }
});

Deno.test("parseModelProto() rejects a field of the wrong wire type", () => {
  const bytes = new BinaryWriter().tag(1, WireType.Varint).int32(5).finish();
  assert.throws(
    () => parseModelProto(bytes, "x.model"),
    /field 1 \(pieces\) of ModelProto at offset 0 has wire type varint, expected length-delimited/,
  );
});

Deno.test("parseModelProto() rejects a piece of unknown type", () => {
  const bytes = buildModel({ pieces: [...BASE_PIECES, { piece: "a", type: 9 }] });
  assert.throws(
    () => parseModelProto(bytes, "x.model"),
    /invalid piece at offset \d+: unknown type 9/,
  );
});

Deno.test("SentencePieceTokenizer.parse() survives random corruption of a model", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(unigram.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.nat(unigram.length),
      (flips, cut) => {
        const bytes = unigram.slice(0, Math.max(1, cut));
        for (const [at, value] of flips) if (at < bytes.length) bytes[at] = value;
        let tokenizer: SentencePieceTokenizer;
        try {
          tokenizer = SentencePieceTokenizer.parse(bytes, "corrupt.model");
        } catch (error) {
          assert.ok(
            error instanceof TokenizerFormatError || error instanceof UnsupportedTokenizerError,
            String(error),
          );
          return;
        }
        // A model that still parses must encode and decode anything.
        const ids = tokenizer.encode("In the beginning, 日本 🙏  LORD<sep>!");
        tokenizer.decode(ids);
      },
    ),
    { numRuns: 400 },
  );
});
