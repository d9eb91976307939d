/**
 * Tokenizers of Llama checkpoints in pure TypeScript, identical to the reference implementations:
 * SentencePiece (Llama 1 and 2, the embedded KJV model), tiktoken (Llama 3, 3.1, 3.2) and Hugging
 * Face `tokenizer.json` BPE files (byte-level like Llama 3 and SmolLM2, or SentencePiece-style
 * with byte fallback like Llama 2 and TinyLlama) and GGUF vocabularies. Chat templates render
 * conversations as `transformers` does, and encode them without letting user text forge turns.
 * `loadTokenizer` (from the top-level entry point) recognises the format from the file's content,
 * as {@link parseTokenizer} does from bytes; every tokenizer encodes, decodes, and streams text
 * token by token without splitting a character.
 *
 * @example Streaming text token by token
 * ```ts
 * import { parseTokenizer } from "@llamane/llamane/tokenizer";
 * import assert from "node:assert/strict";
 *
 * const tokenizer = parseTokenizer(await Deno.readFile("models/kjv-tiny/tokenizer.model"));
 * const ids = tokenizer.encode("Grace be with you all. Amen. 🙏");
 * const decoder = tokenizer.decoder();
 * let text = "";
 * for (const id of ids) text += decoder.push(id);
 * text += decoder.flush();
 * assert.equal(text, "Grace be with you all. Amen. 🙏");
 * ```
 *
 * @module
 */

export { MAX_TOKENIZER_BYTES, parseTokenizer } from "./load.ts";
export type { ParseTokenizerOptions } from "./load.ts";
export { TokenizerFormatError, UnsupportedTokenizerError } from "./errors.ts";
export type { EncodeOptions, StreamingDecoder } from "./tokenizer.ts";
export { SentencePieceTokenizer } from "./sentencepiece/sentencepiece_tokenizer.ts";
export { TiktokenTokenizer } from "./tiktoken/tiktoken_tokenizer.ts";
export { BpeTokenizer } from "./bpe/bpe_tokenizer.ts";
export { ggufTokenizer } from "./gguf/gguf_tokenizer.ts";
export type { ChatRenderOptions } from "./chat/chat_template.ts";
export { encodeChat, type EncodedChat } from "./chat/chat_encoding.ts";
export { LLAMA3_CHAT_TEMPLATE } from "./chat/llama3_template.ts";
export { LLAMA3_PATTERN, LLAMA3_SPECIAL_TOKENS } from "./tiktoken/llama3.ts";
