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

Deno.test("StopMatcher cuts where searching the text so far after each piece would", () => {
  const alphabet = fc.constantFrom("a", "b", "\n");
  fc.assert(
    fc.property(
      fc.array(fc.string({ unit: alphabet, maxLength: 4 }), { maxLength: 12 }),
      fc.array(fc.string({ unit: alphabet, minLength: 1, maxLength: 3 }), { maxLength: 3 }),
      (pieces, stops) => {
        // Generation stops at the first piece after which some stop string has appeared.
        let expected = { text: pieces.join(""), stopped: false };
        for (let end = 1; end <= pieces.length; end++) {
          const sofar = pieces.slice(0, end).join("");
          const cuts = stops.map((stop) => sofar.indexOf(stop)).filter((at) => at >= 0);
          if (cuts.length > 0) {
            expected = { text: sofar.slice(0, Math.min(...cuts)), stopped: true };
            break;
          }
        }
        assert.deepEqual(run(stops, pieces), expected);
      },
    ),
    { numRuns: 2000 },
  );
});
