/**
 * llamane: put Llama models on the Apple Neural Engine, and run them anywhere.
 *
 * - {@link exportModel} turns a checkpoint (Meta, a Hugging Face folder or GGUF) into a bundle of
 *   static-shape Core ML programs.
 * - {@link loadModel} loads a bundle on a backend; {@link generate} streams text from it, and
 *   with its `lookahead` option gives greedy decoding's tokens in fewer model calls.
 * - {@link Chat} holds a conversation through the model's chat template, keeping the cache
 *   between turns.
 * - {@link serveBundle} serves a bundle over an OpenAI-compatible HTTP API, as `llamane serve`.
 * - {@link loadTokenizer} reads SentencePiece, tiktoken, tokenizer.json and GGUF vocabularies.
 * - {@link embeddedModel} gives the small King James model shipped with llamane, from anywhere.
 *
 * Each entry point checks the Deno permissions it needs up front and names the missing flag.
 *
 * These are the names a script that exports, generates, chats or serves types. Each name has one
 * entry point: the parts behind them (quantization and storage types, progress and statistics,
 * backends and sessions, the server's pieces) come from the sub-paths `./export`, `./runtime`,
 * `./serve`, `./tokenizer`, `./bundle`, `./llama`, `./checkpoint`, `./gguf` and `./coreml`.
 *
 * @example Export the embedded model, then generate greedily
 * ```ts ignore
 * import { embeddedModel, exportModel, generate, loadModel, loadTokenizer } from "@llamane/llamane";
 *
 * {
 *   await using kjv = await embeddedModel();
 *   await exportModel({ checkpoint: kjv.checkpoint, params: kjv.params, output: "out/kjv.llamane" });
 * }
 * using model = await loadModel("out/kjv.llamane");
 * const tokenizer = await loadTokenizer("out/kjv.llamane/tokenizer.model");
 * const stdout = Deno.stdout.writable.getWriter();
 * for await (const { text } of generate(model, tokenizer, "And God said", { temperature: 0 })) {
 *   await stdout.write(new TextEncoder().encode(text));
 * }
 * stdout.releaseLock();
 * ```
 *
 * @module
 */

export { exportModel, type ExportSummary } from "./export/export_model.ts";
export type { ExportOptions } from "./export/options.ts";
export { loadModel } from "./runtime/load_model.ts";
export { LoadedModel } from "./runtime/model.ts";
export {
  generate,
  type GenerateOptions,
  type Generation,
  type TokenEvent,
} from "./runtime/generate.ts";
export { LookaheadError } from "./runtime/lookahead.ts";
export { Chat } from "./runtime/chat.ts";
export { loadTokenizer } from "./tokenizer/load.ts";
export type { Tokenizer } from "./tokenizer/tokenizer.ts";
export {
  type ChatMessage,
  ChatTemplate,
  ChatTemplateError,
} from "./tokenizer/chat/chat_template.ts";
export { type BundleServerOptions, serveBundle } from "./serve/serve_bundle.ts";
export { type EmbeddedModel, embeddedModel } from "./models/embedded.ts";
export { MissingPermissionError } from "./permissions.ts";
