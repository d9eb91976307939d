/**
 * What Llama 3, 3.1 and 3.2 add to a tiktoken ranks file, as Meta's reference tokenizer
 * (`llama_models/llama3/tokenizer.py`) defines it: the pre-tokenization pattern and 256 special
 * tokens numbered from the number of ranks (128000 for Meta's file).
 *
 * @module
 */

/**
 * Meta's pre-tokenization pattern (cl100k's) in JavaScript syntax. The one translation is `\s`:
 * Rust's is Unicode White_Space but JavaScript's adds U+FEFF and lacks U+0085, so the property is
 * spelled out. Case-insensitive contractions keep the `(?i:…)` group, which like Rust folds
 * `'ſ` to `'s`.
 */
export const LLAMA3_PATTERN: RegExp = new RegExp(
  // A string rather than a literal: linters do not know the `(?i:…)` modifier syntax yet.
  String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}` +
    String.raw`| ?[^\p{White_Space}\p{L}\p{N}]+[\r\n]*|\p{White_Space}*[\r\n]+` +
    String.raw`|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+`,
  "gu",
);

/** Llama 3's special tokens in id order: the first has id `number of ranks`. */
export const LLAMA3_SPECIAL_TOKENS: readonly string[] = (() => {
  const named = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
  ];
  const reserved = Array.from(
    { length: 256 - named.length },
    (_, i) => `<|reserved_special_token_${2 + i}|>`,
  );
  return [...named, ...reserved];
})();

/** The beginning-of-sequence token. */
export const LLAMA3_BOS = "<|begin_of_text|>";
/** The end-of-sequence token. */
export const LLAMA3_EOS = "<|end_of_text|>";
/** Tokens that end generation: end of text, end of turn, end of message (tool call). */
export const LLAMA3_STOP_TOKENS: readonly string[] = [LLAMA3_EOS, "<|eot_id|>", "<|eom_id|>"];
