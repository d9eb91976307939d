import assert from "node:assert/strict";
import fc from "fast-check";
import { ARENA_ALIGNMENT, type ArenaBlock, placeArena } from "./arena.ts";

const aligned = (bytes: number) => Math.ceil(bytes / ARENA_ALIGNMENT) * ARENA_ALIGNMENT;
const alive = (a: ArenaBlock, b: ArenaBlock) => a.from <= b.to && b.from <= a.to;

/** Whether `[offset, offset + size)` stays clear of every earlier block alive with `block`. */
function fits(
  blocks: readonly ArenaBlock[],
  offsets: readonly number[],
  index: number,
  offset: number,
): boolean {
  const block = blocks[index]!;
  const size = aligned(block.bytes);
  return blocks.slice(0, index).every((other, k) =>
    !alive(block, other) || offset + size <= offsets[k]! ||
    offsets[k]! + aligned(other.bytes) <= offset
  );
}

const blocks = fc.array(
  fc.record({
    bytes: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.constant(0.5)),
    from: fc.integer({ min: 0, max: 20 }),
    span: fc.integer({ min: 0, max: 8 }),
  }).map(({ bytes, from, span }) => ({ bytes, from, to: from + span })),
  { maxLength: 24 },
);

Deno.test("placeArena() never overlaps two blocks alive at one step", () => {
  fc.assert(fc.property(blocks, (list) => {
    const { offsets, bytes } = placeArena(list);
    assert.equal(offsets.length, list.length);
    list.forEach((block, i) => {
      assert.equal(offsets[i]! % ARENA_ALIGNMENT, 0);
      assert.ok(offsets[i]! + aligned(block.bytes) <= bytes);
      assert.ok(fits(list, offsets, i, offsets[i]!), `block ${i} overlaps a live block`);
    });
  }));
});

Deno.test("placeArena() takes the lowest aligned offset that fits (first fit)", () => {
  fc.assert(fc.property(blocks, (list) => {
    const { offsets } = placeArena(list);
    list.forEach((_, i) => {
      for (let lower = 0; lower < offsets[i]!; lower += ARENA_ALIGNMENT) {
        assert.ok(!fits(list, offsets, i, lower), `block ${i} fits lower, at ${lower}`);
      }
    });
  }));
});

Deno.test("placeArena() reuses the bytes of dead blocks and sizes the arena to the peak", () => {
  const { offsets, bytes } = placeArena([
    { bytes: 100, from: 0, to: 1 }, // 128 bytes at 0
    { bytes: 64, from: 1, to: 2 }, // alive with the first: after it
    { bytes: 100, from: 2, to: 3 }, // the first is dead: in its bytes
    { bytes: 300, from: 3, to: 4 }, // the second is dead too: right after the third
  ]);
  assert.deepEqual(offsets, [0, 128, 0, 128]);
  assert.equal(bytes, 448);
  assert.deepEqual(placeArena([]), { offsets: [], bytes: 0 });
});
