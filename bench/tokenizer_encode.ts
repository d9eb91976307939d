/**
 * Benchmark: encoding 1 MiB of English (the KJV, one verse per line, as one string) with each
 * tokenizer kind: the embedded KJV SentencePiece BPE, the test tiktoken ranks with Llama 3's
 * pattern, and the two other SentencePiece test models (unigram; BPE with nmt_nfkc, which takes
 * the whole-text merge path because its pieces end in ▁), and the Hugging Face kinds built by
 * scripts/tokenizer/hf_oracle.py: SmolLM2's tokenizer.json (byte-level, 49,152 tokens) and GGUF
 * vocabulary, the Llama 3 style tokenizer.json, and the Llama 2 style byte-fallback one (no
 * pre-tokenizer: each line is one word). Target: under 1 s per MiB for SentencePiece BPE and
 * tiktoken. `cold` is a freshly loaded tokenizer (empty word cache), `warm`
 * a second encode; both are the best of three. Decoding all ids back is timed as well.
 *
 * @module
 */

import type { Bench, Figures } from "./bench.ts";
import { loadTokenizer } from "../tokenizer/load.ts";
import { parseTokenizer } from "../tokenizer/mod.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { oracleTokenizerDir, smollm2Gguf } from "../testing/hf_oracle.ts";

const ROOT = new URL("../", import.meta.url);
const CACHE = new URL("out/bench/tokenizer/", ROOT);
const TEXT_BYTES = 2 ** 20;
const RUNS = 3;
const TOKENIZERS = {
  spm_kjv_bpe: "models/kjv-tiny/tokenizer.model",
  tiktoken_kjv: "testdata/tokenizer/kjv_tiktoken.model",
  spm_unigram: "testdata/tokenizer/spm_unigram.model",
  spm_nfkc_bpe: "testdata/tokenizer/spm_nfkc_bpe.model",
};

/** 1 MiB of KJV verses, dumped once by scripts/kjv/prepare_text.py into out/bench/tokenizer/. */
async function englishText(): Promise<string> {
  const verses = new URL("verses.txt", CACHE);
  try {
    await Deno.stat(verses);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(CACHE, { recursive: true });
    const script = new URL("scripts/kjv/prepare_text.py", ROOT).pathname;
    const heldout = new URL("heldout.txt", CACHE).pathname;
    const { success } = await new Deno.Command("/usr/bin/python3", {
      args: [script, verses.pathname, heldout],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!success) throw new Error(`Cannot dump the KJV text: ${script} failed`);
  }
  const bytes = await Deno.readFile(verses);
  // The KJV text is ASCII, so a byte cut is a character cut.
  return new TextDecoder().decode(bytes.subarray(0, TEXT_BYTES));
}

function bestOf(run: () => void): number {
  let best = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return Math.round(best);
}

/** `tokenizer_encode` */
export const tokenizerEncode: Bench = {
  name: "tokenizer_encode",
  description: "encode and decode 1 MiB of KJV English with each tokenizer kind",
  async run() {
    const text = await englishText();
    const figures: Figures = { text_bytes: new TextEncoder().encode(text).length };
    for (const [name, path] of Object.entries(TOKENIZERS)) {
      const bytes = await Deno.readFile(new URL(path, ROOT));
      let tokenizer = parseTokenizer(bytes, { name: path });
      figures[`${name}_load_ms`] = bestOf(() => parseTokenizer(bytes, { name: path }));
      let ids: number[] = [];
      figures[`${name}_encode_cold_ms`] = bestOf(() => {
        tokenizer = parseTokenizer(bytes, { name: path });
        ids = tokenizer.encode(text);
      });
      figures[`${name}_encode_warm_ms`] = bestOf(() => tokenizer.encode(text));
      figures[`${name}_tokens`] = ids.length;
      figures[`${name}_decode_ms`] = bestOf(() => tokenizer.decode(ids));
    }
    const loaded: Record<string, () => Promise<Tokenizer>> = {
      hf_smollm2_json: async () =>
        loadTokenizer(`${await oracleTokenizerDir("smollm2")}/tokenizer.json`),
      hf_llama3_json: async () =>
        loadTokenizer(`${await oracleTokenizerDir("llama3")}/tokenizer.json`),
      hf_llama2_json: async () =>
        loadTokenizer(`${await oracleTokenizerDir("llama2")}/tokenizer.json`),
      gguf_smollm2: async () => loadTokenizer(await smollm2Gguf()),
    };
    for (const [name, load] of Object.entries(loaded)) {
      let best = Infinity;
      let tokenizer = await load();
      for (let i = 0; i < RUNS; i++) {
        const start = performance.now();
        tokenizer = await load();
        best = Math.min(best, performance.now() - start);
      }
      figures[`${name}_load_ms`] = Math.round(best);
      // Cold: the first encode of a fresh tokenizer, once (loading takes a while).
      const start = performance.now();
      const ids = tokenizer.encode(text);
      figures[`${name}_encode_cold_ms`] = Math.round(performance.now() - start);
      figures[`${name}_encode_warm_ms`] = bestOf(() => tokenizer.encode(text));
      figures[`${name}_tokens`] = ids.length;
      figures[`${name}_decode_ms`] = bestOf(() => tokenizer.decode(ids));
    }
    return figures;
  },
};
