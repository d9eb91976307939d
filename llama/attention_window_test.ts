import assert from "node:assert/strict";
import { attentionWindow, cacheSlot, inWindow } from "./attention_window.ts";

Deno.test("attentionWindow() keeps sinks only for a model trained beyond the cache", () => {
  assert.deepEqual(attentionWindow(992, 8192), { cacheLength: 992, sinks: 4, sinkReach: 8192 });
  assert.deepEqual(attentionWindow(8, 100), { cacheLength: 8, sinks: 2, sinkReach: 100 });
  assert.deepEqual(attentionWindow(3, 100), { cacheLength: 3, sinks: 0, sinkReach: 0 });
  assert.deepEqual(attentionWindow(992, 992), { cacheLength: 992, sinks: 0, sinkReach: 0 });
  assert.deepEqual(attentionWindow(992, undefined), { cacheLength: 992, sinks: 0, sinkReach: 0 });
});

Deno.test("a window of 8 slots with 2 sinks, for a model trained on 20 positions", () => {
  const window = attentionWindow(8, 20);
  const visible = (query: number) =>
    Array.from({ length: query }, (_, key) => key).filter((key) => inWindow(window, query, key));
  // Until the cache is outgrown, everything; then the sinks and the 6 before; then, 20 positions
  // on, only the 6 before.
  assert.deepEqual(visible(8), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(visible(12), [0, 1, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual(visible(20), [1, 14, 15, 16, 17, 18, 19]);
  assert.deepEqual(visible(21), [15, 16, 17, 18, 19, 20]);
  // Sinks keep slots 0 and 1; the rest cycle through slots 2 to 7.
  assert.deepEqual([0, 1, 2, 7, 8, 13].map((p) => cacheSlot(window, p)), [0, 1, 2, 7, 2, 7]);
});
