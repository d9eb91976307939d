/**
 * Trains testdata/tokenizer/kjv_tiktoken.model: a byte-level BPE ranks file in Llama 3's format
 * (`<base64 token> <rank>` per line), 3,072 ranks learned from the KJV training text, for testing
 * the tiktoken tokenizer against the npm `tiktoken` package with the same ranks.
 *
 * Usage: deno run --allow-read --allow-write --allow-run scripts/tokenizer/train_tiktoken_ranks.ts
 *
 * Ranks 0-255 are the single bytes in byte order; each later rank is the most frequent adjacent
 * pair of tokens within Llama 3 pre-tokens (ties to the lowest pair of ids), as tiktoken's BPE
 * expects. A pair whose bytes already form a token reuses it, so no token appears twice. The
 * result is deterministic.
 *
 * @module
 */

import { LLAMA3_PATTERN } from "../../tokenizer/tiktoken/llama3.ts";

const RANKS = 3072;
const root = new URL("../../", import.meta.url);
const work = new URL("out/tokenizer/", root);
const output = new URL("testdata/tokenizer/kjv_tiktoken.model", root);

/** The KJV training verses (Genesis to Philemon), one per line, via scripts/kjv/prepare_text.py. */
async function trainingText(): Promise<string> {
  await Deno.mkdir(work, { recursive: true });
  const train = new URL("kjv_train.txt", work).pathname;
  const heldout = new URL("kjv_heldout.txt", work).pathname;
  const { success } = await new Deno.Command("/usr/bin/python3", {
    args: [new URL("scripts/kjv/prepare_text.py", root).pathname, train, heldout],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) throw new Error("Cannot dump the KJV text: scripts/kjv/prepare_text.py failed");
  return await Deno.readTextFile(train);
}

interface Word {
  ids: number[];
  readonly count: number;
}

const pairKey = (a: number, b: number) => a * 0x100000 + b;

function train(text: string): string[] {
  const counts = new Map<string, number>();
  for (const [piece] of text.matchAll(LLAMA3_PATTERN)) {
    counts.set(piece, (counts.get(piece) ?? 0) + 1);
  }
  // Tokens as binary strings (one char per byte), indexed by id = rank.
  const tokens = Array.from({ length: 256 }, (_, byte) => String.fromCharCode(byte));
  const idOf = new Map(tokens.map((token, id) => [token, id]));
  const encoder = new TextEncoder();
  const words: Word[] = [...counts].map(([piece, count]) => ({
    ids: [...encoder.encode(piece)],
    count,
  }));
  const pairCounts = new Map<number, number>();
  // Words that contained each pair when it was counted; checked again before use.
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (index: number, sign: number) => {
    const { ids, count } = words[index]!;
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = pairKey(ids[i]!, ids[i + 1]!);
      const total = (pairCounts.get(key) ?? 0) + sign * count;
      if (total === 0) pairCounts.delete(key);
      else pairCounts.set(key, total);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (set === undefined) pairWords.set(key, set = new Set());
        set.add(index);
      }
    }
  };
  words.forEach((_, index) => addPairs(index, 1));

  while (tokens.length < RANKS && pairCounts.size > 0) {
    let bestKey = -1, bestCount = 0;
    for (const [key, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && key < bestKey)) {
        bestKey = key;
        bestCount = count;
      }
    }
    const a = Math.floor(bestKey / 0x100000), b = bestKey % 0x100000;
    const bytes = tokens[a]! + tokens[b]!;
    let merged = idOf.get(bytes);
    if (merged === undefined) {
      merged = tokens.length;
      tokens.push(bytes);
      idOf.set(bytes, merged);
    }
    for (const index of pairWords.get(bestKey) ?? []) {
      const word = words[index]!;
      addPairs(index, -1);
      const ids: number[] = [];
      for (let i = 0; i < word.ids.length; i++) {
        if (i + 1 < word.ids.length && word.ids[i] === a && word.ids[i + 1] === b) {
          ids.push(merged);
          i++;
        } else {
          ids.push(word.ids[i]!);
        }
      }
      word.ids = ids;
      addPairs(index, 1);
    }
    pairWords.delete(bestKey);
  }
  return tokens;
}

if (import.meta.main) {
  const tokens = train(await trainingText());
  const lines = tokens.map((token, rank) => `${btoa(token)} ${rank}\n`);
  await Deno.writeTextFile(output, lines.join(""));
  console.log(`wrote ${tokens.length} ranks to ${output.pathname}`);
}
