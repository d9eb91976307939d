import assert from "node:assert/strict";
import fc from "fast-check";
import { Utf8Stream } from "./utf8_stream.ts";

/** Bytes weighted towards UTF-8 lead and continuation bytes, so sequences often almost form. */
const utf8ish = fc.uint8Array({ maxLength: 48 }).map((bytes) =>
  bytes.map((b) => (b % 4 === 0 ? 0x80 | (b & 0x3f) : b % 4 === 1 ? 0xc0 | (b & 0x3f) : b))
);

/** Splits `bytes` at the given cut points (taken modulo its length). */
function chunksOf(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  return chunks;
}

function decodeInChunks(mode: "maximal-subpart" | "per-byte", chunks: Uint8Array[]): string[] {
  const stream = new Utf8Stream(mode);
  return [...chunks.map((chunk) => stream.push(chunk)), stream.end()];
}

Deno.test("Utf8Stream maximal-subpart mode matches TextDecoder however the bytes are cut", () => {
  const reference = new TextDecoder("utf-8", { ignoreBOM: true });
  fc.assert(
    fc.property(utf8ish, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      const pieces = decodeInChunks("maximal-subpart", chunksOf(bytes, cuts));
      assert.equal(pieces.join(""), reference.decode(bytes));
    }),
    { numRuns: 3000 },
  );
});

Deno.test("Utf8Stream never returns part of a character", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "grapheme", maxLength: 24 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (text, cuts) => {
        const bytes = new TextEncoder().encode(text);
        for (const mode of ["maximal-subpart", "per-byte"] as const) {
          const pieces = decodeInChunks(mode, chunksOf(bytes, cuts));
          assert.equal(pieces.join(""), text);
          for (const piece of pieces) {
            assert.ok(!piece.includes("\uFFFD") || text.includes("\uFFFD"));
          }
        }
      },
    ),
    { numRuns: 2000 },
  );
});

Deno.test("Utf8Stream per-byte mode replaces each byte that starts no character", () => {
  // The independent check of this mode is sentencepiece itself (the random decodes of the
  // SentencePiece oracle test); here, the cut points must not matter.
  fc.assert(
    fc.property(utf8ish, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
      const whole = decodeInChunks("per-byte", [bytes]).join("");
      assert.equal(decodeInChunks("per-byte", chunksOf(bytes, cuts)).join(""), whole);
    }),
    { numRuns: 3000 },
  );
  const stream = new Utf8Stream("per-byte");
  assert.equal(stream.push(Uint8Array.of(0xf0, 0x9f, 0x99)), "");
  assert.ok(stream.hasPending);
  assert.match(stream.end(), /^\uFFFD+$/);
  assert.ok(!stream.hasPending);
});
