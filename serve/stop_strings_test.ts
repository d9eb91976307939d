import assert from "node:assert/strict";
import fc from "fast-check";
import { StopMatcher } from "./stop_strings.ts";

/** Pushes `pieces` and returns the released text and whether a stop was found. */
function run(stops: string[], pieces: string[]): { text: string; stopped: boolean } {
  const matcher = new StopMatcher(stops);
  let text = "";
  for (const piece of pieces) {
    const step = matcher.push(piece);
    text += step.text;
    if (step.stopped) return { text, stopped: true };
  }
  return { text: text + matcher.flush(), stopped: false };
}

Deno.test("StopMatcher finds a stop string split over pieces and releases nothing of it", () => {
  assert.deepEqual(run(["\n\n"], ["Hello", "\n", "\n", "world"]), { text: "Hello", stopped: true });
  assert.deepEqual(run(["END"], ["aE", "N", "xE", "ND!"]), { text: "aENx", stopped: true });
  // The earliest of several stops wins, whichever is listed first.
  assert.deepEqual(run(["cd", "b"], ["ab", "cd"]), { text: "a", stopped: true });
  assert.deepEqual(run(["zz", ""], ["a", "z", "b"]), { text: "azb", stopped: false });
});

Deno.test("StopMatcher releases text as a plain search over the whole text would cut it", () => {
  const alphabet = fc.constantFrom("a", "b", "\n");
  fc.assert(fc.property(
    fc.array(fc.string({ unit: alphabet, maxLength: 4 }), { maxLength: 12 }),
    fc.array(fc.string({ unit: alphabet, minLength: 1, maxLength: 3 }), { maxLength: 3 }),
    (pieces, stops) => {
      const whole = pieces.join("");
      const cuts = stops.map((stop) => whole.indexOf(stop)).filter((at) => at >= 0);
      const expected = cuts.length === 0
        ? { text: whole, stopped: false }
        : { text: whole.slice(0, Math.min(...cuts)), stopped: true };
      assert.deepEqual(run(stops, pieces), expected);
    },
  ));
});
