/**
 * The text stages before the model, as tokenizer.json describes them: normalizers rewrite a
 * segment of text (the text between added tokens), pre-tokenizers cut it into the pieces the
 * model encodes one by one. Only what Llama-family files use is implemented; any other type is
 * refused by name rather than ignored.
 *
 * @module
 */

import { GPT2_PATTERN, toByteLevel } from "./byte_level.ts";
import type { JsonFields } from "./json_fields.ts";
import { compileOniguruma } from "./oniguruma.ts";

/** Rewrites one segment of text. */
export type Normalize = (text: string) => string;

/**
 * Cuts pieces into smaller pieces. `atStart` says the first piece begins the whole input (not a
 * segment after an added token), which Metaspace's `prepend_scheme: "first"` looks at.
 */
export type PreTokenize = (pieces: string[], atStart: boolean) => string[];

/** How a split pattern's matches become pieces (tokenizers' SplitDelimiterBehavior). */
export type SplitBehavior =
  | "Removed"
  | "Isolated"
  | "MergedWithPrevious"
  | "MergedWithNext"
  | "Contiguous";

const BEHAVIORS: readonly SplitBehavior[] = [
  "Removed",
  "Isolated",
  "MergedWithPrevious",
  "MergedWithNext",
  "Contiguous",
];

/** Throws for a well-formed feature this implementation does not have. */
export type Unsupported = (detail: string) => never;

/** Splits `text` around the matches of a global `pattern` as `behavior` says. */
export function splitText(
  text: string,
  pattern: RegExp,
  behavior: SplitBehavior,
  invert = false,
): string[] {
  const spans: { text: string; match: boolean }[] = [];
  let last = 0;
  for (const found of text.matchAll(pattern)) {
    if (found[0] === "") continue;
    if (found.index > last) spans.push({ text: text.slice(last, found.index), match: invert });
    spans.push({ text: found[0], match: !invert });
    last = found.index + found[0].length;
  }
  if (last < text.length) spans.push({ text: text.slice(last), match: invert });

  const pieces: string[] = [];
  let carry = "";
  let previousMatched = false;
  for (const span of spans) {
    if (!span.match) {
      pieces.push(carry + span.text);
      carry = "";
    } else if (behavior === "Isolated") {
      pieces.push(span.text);
    } else if (behavior === "MergedWithPrevious" && pieces.length > 0 && !previousMatched) {
      pieces[pieces.length - 1] += span.text;
    } else if (behavior === "MergedWithPrevious") {
      pieces.push(span.text);
    } else if (behavior === "MergedWithNext") {
      carry += span.text;
    } else if (behavior === "Contiguous" && previousMatched) {
      pieces[pieces.length - 1] += span.text;
    } else if (behavior === "Contiguous") {
      pieces.push(span.text);
    }
    previousMatched = span.match && behavior !== "Removed";
  }
  if (carry !== "") pieces.push(carry);
  return pieces.filter((piece) => piece !== "");
}

/** The pattern of a Split or Replace: `{String: literal}` or `{Regex: oniguruma}`. */
function patternOf(fields: JsonFields): RegExp {
  const pattern = fields.object("pattern");
  if (pattern.has("String")) {
    return new RegExp(RegExp.escape(pattern.string("String")), "gu");
  }
  const source = pattern.string("Regex");
  try {
    return compileOniguruma(source);
  } catch (error) {
    return pattern.fail(`cannot be compiled: ${(error as Error).message}`, "Regex");
  }
}

/** The normalizer a tokenizer.json `normalizer` object describes. */
export function buildNormalizer(fields: JsonFields, unsupported: Unsupported): Normalize {
  const type = fields.string("type");
  switch (type) {
    case "Sequence": {
      const steps = fields.objects("normalizers").map((step) => buildNormalizer(step, unsupported));
      return (text) => steps.reduce((acc, step) => step(acc), text);
    }
    case "Prepend": {
      const prefix = fields.string("prepend");
      return (text) => text === "" ? text : prefix + text;
    }
    case "Replace": {
      const pattern = patternOf(fields);
      const content = fields.string("content");
      return (text) => text.replace(pattern, () => content);
    }
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD":
      return (text) => text.normalize(type);
    case "Lowercase":
      return (text) => text.toLowerCase();
    case "Strip": {
      const left = fields.boolean("strip_left", true), right = fields.boolean("strip_right", true);
      return (text) =>
        right ? (left ? text.trim() : text.trimEnd()) : left ? text.trimStart() : text;
    }
    default:
      return unsupported(`the normalizer type "${type}" is not supported`);
  }
}

/** The pre-tokenizer a tokenizer.json `pre_tokenizer` object describes. */
export function buildPreTokenizer(fields: JsonFields, unsupported: Unsupported): PreTokenize {
  const type = fields.string("type");
  const each =
    (cut: (piece: string, first: boolean) => string[]): PreTokenize => (pieces, atStart) =>
      pieces.flatMap((piece, i) => cut(piece, atStart && i === 0));
  switch (type) {
    case "Sequence": {
      const steps = fields.objects("pretokenizers").map((step) =>
        buildPreTokenizer(step, unsupported)
      );
      return (pieces, atStart) => steps.reduce((acc, step) => step(acc, atStart), pieces);
    }
    case "Split": {
      const pattern = patternOf(fields);
      const behavior = fields.string("behavior") as SplitBehavior;
      if (!BEHAVIORS.includes(behavior)) {
        fields.fail(`is "${behavior}", expected one of ${BEHAVIORS.join(", ")}`, "behavior");
      }
      const invert = fields.boolean("invert", false);
      return each((piece) => splitText(piece, pattern, behavior, invert));
    }
    case "ByteLevel": {
      const prefix = fields.boolean("add_prefix_space", true);
      const useRegex = fields.boolean("use_regex", true);
      return each((piece) => {
        const spaced = prefix && !piece.startsWith(" ") ? " " + piece : piece;
        const parts = useRegex ? splitText(spaced, GPT2_PATTERN, "Isolated") : [spaced];
        return parts.map(toByteLevel);
      });
    }
    case "Digits": {
      const digits = fields.boolean("individual_digits", false) ? /\p{N}/gu : /\p{N}+/gu;
      return each((piece) => splitText(piece, digits, "Isolated"));
    }
    case "Metaspace": {
      const replacement = fields.string("replacement");
      const scheme = fields.string("prepend_scheme", "always");
      if (!["always", "first", "never"].includes(scheme)) {
        fields.fail(`is "${scheme}", expected always, first or never`, "prepend_scheme");
      }
      const split = fields.boolean("split", true);
      const separator = new RegExp(RegExp.escape(replacement), "gu");
      return each((piece, first) => {
        let text = piece.replaceAll(" ", replacement);
        const prepend = scheme === "always" || (scheme === "first" && first);
        if (prepend && !text.startsWith(replacement)) text = replacement + text;
        return split ? splitText(text, separator, "MergedWithNext") : [text];
      });
    }
    default:
      return unsupported(`the pre-tokenizer type "${type}" is not supported`);
  }
}
