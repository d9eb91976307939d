/**
 * The held-out KJV text (`testdata/kjv/heldout.txt`: Hebrews to Revelation, which neither the KJV
 * model nor its tokenizer saw in training) as benchmark input: verse prompts, and windows of the
 * running token stream laid out as `scripts/kjv/evaluate.py` scores its held-out loss.
 *
 * @module
 */

import { loadTokenizer } from "../tokenizer/load.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

const ROOT = new URL("../", import.meta.url);

/** The held-out verses and their token stream. */
export interface HeldOut {
  readonly tokenizer: Tokenizer;
  readonly bos: number;
  /** One verse per entry, in order. */
  readonly verses: readonly string[];
  /** Every verse encoded on its own and concatenated: running text, no BOS between verses. */
  readonly stream: readonly number[];
}

/** Reads and encodes the held-out text with the KJV model's tokenizer. */
export async function kjvHeldOut(): Promise<HeldOut> {
  const tokenizer = await loadTokenizer(new URL("models/kjv-tiny/tokenizer.model", ROOT));
  const text = await Deno.readTextFile(new URL("testdata/kjv/heldout.txt", ROOT));
  const verses = text.split("\n").filter((line) => line !== "");
  const stream = verses.flatMap((verse) => tokenizer.encode(verse));
  if (tokenizer.bosId === undefined) throw new Error("The KJV tokenizer has no BOS token");
  return { tokenizer, bos: tokenizer.bosId, verses, stream };
}

/** BOS and the first `tokens` tokens of each of `count` evenly spaced verses. */
export function versePrompts(heldOut: HeldOut, count: number, tokens: number): number[][] {
  const step = heldOut.verses.length / count;
  return Array.from({ length: count }, (_, i) => {
    const verse = heldOut.verses[Math.floor(i * step)]!;
    return [heldOut.bos, ...heldOut.tokenizer.encode(verse).slice(0, tokens)];
  });
}

/**
 * `count` windows of `length` tokens from evenly spaced chunks of the stream, each after BOS (so
 * `length + 1` tokens, every one but BOS scored), as the model was trained and as its recorded
 * held-out loss was measured.
 */
export function heldOutWindows(heldOut: HeldOut, count: number, length: number): number[][] {
  const chunks = Math.floor(heldOut.stream.length / length);
  if (chunks < count) {
    throw new RangeError(`Cannot take ${count} windows of ${length} from ${chunks} chunks`);
  }
  return Array.from({ length: count }, (_, i) => {
    const begin = Math.floor((i * chunks) / count) * length;
    return [heldOut.bos, ...heldOut.stream.slice(begin, begin + length)];
  });
}
