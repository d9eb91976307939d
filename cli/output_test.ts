import assert from "node:assert/strict";
import { type ByteSink, writeText } from "./output.ts";

/** A sink that takes at most `limit` bytes per write, as an interrupted write does. */
function shortWrites(limit: number): ByteSink & { bytes: number[]; calls: number } {
  return {
    bytes: [],
    calls: 0,
    write(chunk) {
      this.calls++;
      const taken = chunk.subarray(0, limit);
      this.bytes.push(...taken);
      return Promise.resolve(taken.length);
    },
  };
}

Deno.test("writeText writes every byte of a text through partial writes", async () => {
  const text = "Thanks — 🙂";
  const sink = shortWrites(3);
  await writeText(text, sink);
  assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(sink.bytes)), text);
  assert.equal(sink.calls, Math.ceil(new TextEncoder().encode(text).length / 3));
});

Deno.test("writeText writes nothing for an empty text", async () => {
  const sink = shortWrites(3);
  await writeText("", sink);
  assert.equal(sink.calls, 0);
});
