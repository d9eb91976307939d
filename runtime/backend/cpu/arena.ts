/**
 * Places the plan's intermediate tensors in one scratch arena: tensors that are never alive at the
 * same step share bytes. Offsets are multiples of 64, as `ffi/cpu/src/plan/arena.rs` requires.
 *
 * @module
 */

/** Alignment of every arena offset, in bytes. */
export const ARENA_ALIGNMENT = 64;

/** A tensor to place: its size, and the steps from its writing to its last reading. */
export interface ArenaBlock {
  readonly bytes: number;
  /** Index of the step that writes it. */
  readonly from: number;
  /** Index of the last step that reads it, `from` at the least. */
  readonly to: number;
}

/** Where each block goes, and the arena size they need. */
export interface ArenaLayout {
  /** One offset per block, in order. */
  readonly offsets: readonly number[];
  readonly bytes: number;
}

/**
 * First fit, in the order given: each block goes at the lowest aligned offset where it overlaps
 * no block placed before it that is alive at any of its steps.
 */
export function placeArena(blocks: readonly ArenaBlock[]): ArenaLayout {
  const placed: { start: number; end: number; from: number; to: number }[] = [];
  const offsets: number[] = [];
  let total = 0;
  for (const { bytes, from, to } of blocks) {
    const size = Math.ceil(bytes / ARENA_ALIGNMENT) * ARENA_ALIGNMENT;
    const busy = placed.filter((p) => p.from <= to && from <= p.to).sort((a, b) =>
      a.start - b.start
    );
    let offset = 0;
    for (const p of busy) {
      if (offset + size <= p.start) break;
      offset = Math.max(offset, p.end);
    }
    placed.push({ start: offset, end: offset + size, from, to });
    offsets.push(offset);
    total = Math.max(total, offset + size);
  }
  return { offsets, bytes: total };
}
