/**
 * `llamane tokenize` as users run it: a subprocess allowed to read the tokenizer file only.
 */

import assert from "node:assert/strict";
import { llamane } from "./_testing.ts";

const root = new URL("../", import.meta.url);
const KJV = new URL("models/kjv-tiny/tokenizer.model", root).pathname;
const RANKS = new URL("testdata/tokenizer/kjv_tiktoken.model", root).pathname;

function tokenize(permissions: string[], ...args: string[]) {
  return llamane(permissions, "tokenize", ...args);
}

// sentencepiece's answers for the corpus (scripts/tokenizer/make_spm_oracle.py).
const corpus: string[] = JSON.parse(
  await Deno.readTextFile(new URL("testdata/tokenizer/corpus.json", root)),
);
const oracle = JSON.parse(
  await Deno.readTextFile(new URL("testdata/tokenizer/spm_oracle_kjv.json", root)),
);
const sample = corpus.findIndex((text) => text.length > 40 && !text.startsWith("-"));

Deno.test("llamane tokenize prints sentencepiece's ids, reading only the tokenizer", async () => {
  const result = await tokenize(
    [`--allow-read=${KJV}`],
    "-t",
    KJV,
    "--bos",
    "--eos",
    corpus[sample]!,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout,
    [oracle.bos_id, ...oracle.encode[sample], oracle.eos_id].join(" ") + "\n",
  );
});

Deno.test("llamane tokenize --decode prints sentencepiece's text", async () => {
  const ids: number[] = oracle.encode[sample];
  const result = await tokenize([`--allow-read=${KJV}`], "-t", KJV, "--decode", ...ids.map(String));
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, (oracle.decode[sample] ?? corpus[sample]) + "\n");
});

Deno.test("llamane tokenize --special reads Llama 3 special tokens in the text", async () => {
  const plain = await tokenize([`--allow-read=${RANKS}`], "-t", RANKS, "<|eot_id|>");
  const special = await tokenize([`--allow-read=${RANKS}`], "-t", RANKS, "--special", "<|eot_id|>");
  assert.equal(special.code, 0, special.stderr);
  assert.ok(plain.stdout.trim().split(" ").length > 1);
  assert.equal(special.stdout.trim().split(" ").length, 1);
  const decoded = await tokenize(
    [`--allow-read=${RANKS}`],
    "-t",
    RANKS,
    "--decode",
    special.stdout.trim(),
  );
  assert.equal(decoded.stdout, "<|eot_id|>\n");
});

Deno.test("llamane tokenize without read permission names the flag to add", async () => {
  const result = await tokenize([], "-t", KJV, "hello");
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`run with --allow-read=${KJV}`));
});

Deno.test("llamane tokenize reports usage mistakes with exit code 2", async () => {
  for (
    const args of [["hello"], ["-t", KJV], ["-t", KJV, "--decode", "x"], [
      "-t",
      KJV,
      "--decode",
      "--bos",
      "1",
    ]]
  ) {
    const result = await tokenize([`--allow-read=${KJV}`], ...args);
    assert.equal(result.code, 2, args.join(" "));
    assert.match(result.stderr, /Usage: llamane tokenize/);
  }
});

Deno.test("llamane tokenize -- --help tokenizes the text --help instead of printing help", async () => {
  const encoded = await tokenize([`--allow-read=${KJV}`], "-t", KJV, "--", "--help");
  assert.equal(encoded.code, 0, encoded.stderr);
  assert.match(encoded.stdout, /^\d+( \d+)*\n$/);
  const decoded = await tokenize(
    [`--allow-read=${KJV}`],
    "-t",
    KJV,
    "--decode",
    ...encoded.stdout.trim().split(" "),
  );
  assert.equal(decoded.stdout, "--help\n");
  assert.match((await tokenize([], "-t", KJV, "--help")).stdout, /^Usage: llamane tokenize/);
});
