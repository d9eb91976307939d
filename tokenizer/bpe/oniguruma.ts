/**
 * Split patterns of tokenizer.json files are written for Oniguruma, the regex engine of Hugging
 * Face's `tokenizers`. Most of what Llama-family files use means the same in JavaScript's Unicode
 * mode; the difference that changes tokens is `\s`: Oniguruma's is the Unicode White_Space
 * property, JavaScript's adds U+FEFF and lacks U+0085. The translation spells the property out,
 * inside and outside character classes.
 *
 * @module
 */

/**
 * Compiles an Oniguruma pattern as a global Unicode JavaScript RegExp.
 *
 * @throws {SyntaxError} when JavaScript cannot compile the translated pattern
 */
export function compileOniguruma(pattern: string): RegExp {
  let translated = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char !== "\\" || i + 1 === pattern.length) {
      translated += char;
      continue;
    }
    const next = pattern[++i]!;
    if (next === "s") translated += String.raw`\p{White_Space}`;
    else if (next === "S") translated += String.raw`\P{White_Space}`;
    else translated += char + next;
  }
  return new RegExp(translated, "gu");
}
