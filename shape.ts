/**
 * The element count of a tensor shape, shared by every layer that sizes tensors: checkpoint
 * readers, the Core ML format, the runtime's buffers and the command line.
 *
 * @module
 */

/**
 * Number of elements of a tensor of this shape: 1 for a scalar (`[]`), 0 when any axis is 0, and
 * `Infinity` when the product is not a safe integer, so that callers can reject it in their own
 * words.
 */
export function elementCount(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const size of shape) count *= size;
  return Number.isSafeInteger(count) ? count : Infinity;
}
