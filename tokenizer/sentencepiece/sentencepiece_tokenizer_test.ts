import assert from "node:assert/strict";
import { SentencePieceTokenizer } from "./sentencepiece_tokenizer.ts";

// Answers of Debian's python3-sentencepiece, written by scripts/tokenizer/make_spm_oracle.py.
interface Oracle {
  readonly model: string;
  readonly sha256: string;
  readonly pieces: readonly string[];
  readonly bos_id: number;
  readonly eos_id: number;
  readonly encode: readonly (readonly number[])[];
  readonly decode: readonly (string | null)[];
  readonly random_decodes: readonly [readonly number[], string][];
}

const root = new URL("../../", import.meta.url);
const corpus: readonly string[] = JSON.parse(
  await Deno.readTextFile(new URL("testdata/tokenizer/corpus.json", root)),
);

interface Fixture {
  readonly oracle: Oracle;
  readonly tokenizer: SentencePieceTokenizer;
}

const fixtures = new Map<string, Promise<Fixture>>();

/** The oracle and tokenizer of one model, loaded once and shared by its tests. */
function load(name: string): Promise<Fixture> {
  let fixture = fixtures.get(name);
  if (fixture === undefined) {
    fixture = readFixture(name);
    fixtures.set(name, fixture);
  }
  return fixture;
}

async function readFixture(name: string): Promise<Fixture> {
  const oracle: Oracle = JSON.parse(
    await Deno.readTextFile(new URL(`testdata/tokenizer/spm_oracle_${name}.json`, root)),
  );
  const bytes = await Deno.readFile(new URL(oracle.model, root));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  assert.equal(
    sha256,
    oracle.sha256,
    `${oracle.model} changed since its oracle was written: run ` +
      "/usr/bin/python3 scripts/tokenizer/make_spm_oracle.py",
  );
  return { oracle, tokenizer: SentencePieceTokenizer.parse(bytes, oracle.model) };
}

/** Compares every case and reports the first few differences rather than only the first. */
function assertAllEqual<T>(label: string, cases: readonly [string, T, T][]): void {
  const failures = cases.filter(([, actual, expected]) => !isDeepStrictEqual(actual, expected));
  const shown = failures.slice(0, 5).map(([input, actual, expected]) =>
    `  ${JSON.stringify(input)}:\n    got      ${JSON.stringify(actual)}\n` +
    `    expected ${JSON.stringify(expected)}`
  );
  assert.equal(
    failures.length,
    0,
    `${failures.length} of ${cases.length} ${label} differ from sentencepiece:\n${
      shown.join("\n")
    }`,
  );
}

function isDeepStrictEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

for (const name of ["kjv", "unigram", "nfkc_bpe"]) {
  Deno.test(`encode() matches sentencepiece on the corpus (${name})`, async () => {
    const { oracle, tokenizer } = await load(name);
    assert.ok(corpus.length >= 2000);
    assertAllEqual(
      "encodings",
      corpus.map((text, i) => [text, tokenizer.encode(text), oracle.encode[i]]),
    );
  });

  Deno.test(`decode() matches sentencepiece on the corpus (${name})`, async () => {
    const { oracle, tokenizer } = await load(name);
    assertAllEqual(
      "decodings",
      corpus.map((
        text,
        i,
      ) => [text, tokenizer.decode(oracle.encode[i]!), oracle.decode[i] ?? text]),
    );
  });

  Deno.test(`decode() matches sentencepiece on random id sequences (${name})`, async () => {
    const { oracle, tokenizer } = await load(name);
    assertAllEqual(
      "decodings",
      oracle.random_decodes.map((
        [ids, text],
      ) => [JSON.stringify(ids), tokenizer.decode(ids), text]),
    );
  });

  Deno.test(`decoder() streams decode()'s text in whole characters (${name})`, async () => {
    const { oracle, tokenizer } = await load(name);
    const cases = [...oracle.encode, ...oracle.random_decodes.map(([ids]) => ids)];
    for (const ids of cases) {
      const decoder = tokenizer.decoder();
      const chunks = ids.map((id) => decoder.push(id));
      chunks.push(decoder.flush());
      for (const chunk of chunks) assert.ok(chunk.isWellFormed(), JSON.stringify(chunks));
      assert.equal(chunks.join(""), tokenizer.decode(ids), JSON.stringify(ids));
    }
  });

  Deno.test(`idToPiece(), bosId and eosId match sentencepiece (${name})`, async () => {
    const { oracle, tokenizer } = await load(name);
    assert.equal(tokenizer.vocabSize, oracle.pieces.length);
    assert.deepEqual(oracle.pieces.map((_, id) => tokenizer.idToPiece(id)), oracle.pieces);
    assert.equal(tokenizer.bosId ?? -1, oracle.bos_id);
    assert.equal(tokenizer.eosId ?? -1, oracle.eos_id);
    assert.deepEqual(tokenizer.stopTokens, oracle.eos_id < 0 ? [] : [oracle.eos_id]);
  });

  Deno.test(`encode() adds bos and eos around the oracle's ids (${name})`, async () => {
    const { oracle, tokenizer } = await load(name);
    const text = corpus[20]!;
    assert.deepEqual(tokenizer.encode(text, { bos: true, eos: true }), [
      oracle.bos_id,
      ...oracle.encode[20]!,
      oracle.eos_id,
    ]);
  });
}

Deno.test("decoder() holds back a character split across byte pieces", async () => {
  const { tokenizer } = await load("kjv");
  const ids = tokenizer.encode("x🙂");
  // The KJV vocabulary has no emoji, so byte fallback spells it as four byte pieces.
  assert.deepEqual(ids.slice(-4).map((id) => tokenizer.idToPiece(id)), [
    "<0xF0>",
    "<0x9F>",
    "<0x99>",
    "<0x82>",
  ]);
  const decoder = tokenizer.decoder();
  const chunks = ids.map((id) => decoder.push(id));
  assert.deepEqual(chunks.slice(-4), ["", "", "", "🙂"]);
  assert.equal(decoder.flush(), "");
});

Deno.test("decode() rejects ids outside the vocabulary", async () => {
  const { tokenizer } = await load("kjv");
  for (const id of [-1, tokenizer.vocabSize, 1.5, NaN]) {
    assert.throws(() => tokenizer.decode([id]), RangeError);
    assert.throws(() => tokenizer.decoder().push(id), RangeError);
  }
  assert.throws(() => tokenizer.idToPiece(tokenizer.vocabSize), /\[0, 1024\)/);
});
