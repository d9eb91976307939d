/**
 * A chat bundle for tests: the tiny random-weight model under the oracle's Llama 3 style
 * tokenizer.json, with Llama 3's chat template and `<|eot_id|>` as its end of turn, exported in
 * fp32 with a 512-token cache.
 *
 * @module
 */

import { exportModel } from "../export/export_model.ts";
import { LLAMA3_CHAT_TEMPLATE } from "../tokenizer/mod.ts";
import { oracleTokenizerDir } from "./hf_oracle.ts";
import { TINY_PARAMS, writeTinyLlama } from "./tiny_llama.ts";

/** Exports the chat bundle into a new temporary directory; returns the bundle path. */
export async function exportChatBundle(): Promise<string> {
  const folder = await Deno.makeTempDir();
  await Deno.copyFile(
    `${await oracleTokenizerDir("llama3")}/tokenizer.json`,
    `${folder}/tokenizer.json`,
  );
  await Deno.writeTextFile(
    `${folder}/tokenizer_config.json`,
    JSON.stringify({ eos_token: "<|eot_id|>", chat_template: LLAMA3_CHAT_TEMPLATE }),
  );
  // Its 3,011 ids padded to a multiple of the split size, as real vocabularies often are.
  const tiny = await writeTinyLlama({ ...TINY_PARAMS, vocab_size: 3072 });
  const bundle = `${folder}/chat.llamane`;
  await exportModel({
    checkpoint: tiny.checkpoint,
    params: tiny.params,
    tokenizer: `${folder}/tokenizer.json`,
    output: bundle,
    dtype: "fp32",
    inputLen: 8,
    maxContextLen: 512,
  });
  return bundle;
}
