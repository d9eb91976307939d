import assert from "node:assert/strict";
import fc from "fast-check";
import { TokenizerFormatError } from "../errors.ts";
import { Charsmap } from "./charsmap.ts";
import { parseModelProto } from "./model_proto.ts";

Deno.test("Charsmap.parse() rejects a blob too small for the trie it declares", () => {
  for (const blob of [new Uint8Array(3), Uint8Array.of(0xff, 0, 0, 0, 1, 2, 3, 4)]) {
    assert.throws(
      () => Charsmap.parse(blob, "x.model", 99),
      (error: unknown) =>
        error instanceof TokenizerFormatError && error.offset === 99 &&
        /invalid precompiled_charsmap at offset 99/.test(error.message),
    );
  }
});

Deno.test("Charsmap.match() never reads outside a corrupt blob", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 12, maxLength: 200 }), fc.string(), (bytes, text) => {
      const view = new DataView(bytes.buffer);
      view.setUint32(0, 4 * Math.max(1, Math.floor((bytes.length - 4) / 8)), true);
      const charsmap = Charsmap.parse(bytes, "x.model", 0);
      for (let i = 0; i < text.length; i++) {
        const match = charsmap.match(text, i);
        if (match !== undefined) assert.ok(match.length > 0 && i + match.length <= text.length);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("Charsmap.match() applies nmt_nfkc rules of a trained model", async () => {
  // The nmt_nfkc_bpe model's own rules; the oracle test checks the whole pipeline against
  // sentencepiece, this checks that rules are found at all (a broken trie walk finds none).
  const path = new URL("../../testdata/tokenizer/spm_nfkc_bpe.model", import.meta.url);
  const spec = parseModelProto(await Deno.readFile(path), "nfkc").normalizerSpec;
  const charsmap = Charsmap.parse(spec.precompiledCharsmap, "nfkc", spec.charsmapOffset);
  for (const text of ["ﬁ", "Ａ", "①", "\u00a0"]) {
    const match = charsmap.match(text, 0);
    assert.equal(match?.length, text.length, text);
    assert.equal(match?.replacement, text.normalize("NFKC"), text);
  }
  assert.equal(charsmap.match("abc", 0), undefined);
});
