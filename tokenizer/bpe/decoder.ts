/**
 * Decoding as tokenizer.json's `decoder` describes it, for the two families Llama-family files
 * use: byte-level (tokens are byte strings in GPT-2's alphabet) and SentencePiece-style (U+2581
 * for spaces, `<0xXX>` byte tokens, the leading space of the text removed, by a Strip decoder, or
 * Metaspace's U+2581 dropped from the first token). The result is a per-stream {@link TokenSurface} for the
 * shared streaming decoder.
 *
 * One difference from Hugging Face's ByteFallback decoder, which needs the whole id sequence: it
 * turns a run of byte tokens that is not valid UTF-8 into one U+FFFD per byte of the run, valid
 * characters in it included; streaming cannot take back text already given out, so here only the
 * ill-formed bytes are replaced (one U+FFFD each). Text the encoder produced never differs.
 *
 * @module
 */

import type { TokenSurface } from "../streaming_decoder.ts";
import { fromByteLevel } from "./byte_level.ts";
import type { JsonFields } from "./json_fields.ts";
import type { Unsupported } from "./pipeline.ts";

/** How ids turn into text. */
export interface DecoderSpec {
  /** Tokens are byte strings in GPT-2's alphabet. */
  readonly byteLevel: boolean;
  /** Replacements applied to each token's text, in order (SentencePiece-style). */
  readonly replacements: readonly (readonly [string, string])[];
  /** `<0xXX>` tokens stand for their byte. */
  readonly byteFallback: boolean;
  /** Leading spaces removed from the start of the text (a Strip decoder). */
  readonly stripStart: number;
  /** The first token loses every one of these (Metaspace with a prepend scheme). */
  readonly firstTokenDrops: string | undefined;
}

const BYTE_TOKEN = /^<0x([0-9A-F]{2})>$/;

/** The decoder spec of a tokenizer.json `decoder` object. */
export function parseDecoder(fields: JsonFields, unsupported: Unsupported): DecoderSpec {
  const steps = fields.string("type") === "Sequence" ? fields.objects("decoders") : [fields];
  let spec: DecoderSpec = {
    byteLevel: false,
    replacements: [],
    byteFallback: false,
    stripStart: 0,
    firstTokenDrops: undefined,
  };
  for (const step of steps) {
    const type = step.string("type");
    if (type === "ByteLevel") spec = { ...spec, byteLevel: true };
    else if (type === "ByteFallback") spec = { ...spec, byteFallback: true };
    else if (type === "Fuse") continue;
    else if (type === "Replace") {
      const pattern = step.object("pattern");
      if (!pattern.has("String")) unsupported("a Replace decoder with a regex is not supported");
      spec = {
        ...spec,
        replacements: [...spec.replacements, [pattern.string("String"), step.string("content")]],
      };
    } else if (type === "Strip") {
      if (step.string("content") !== " " || step.count("stop") !== 0) {
        unsupported("a Strip decoder other than of leading spaces is not supported");
      }
      spec = { ...spec, stripStart: step.count("start") };
    } else if (type === "Metaspace") {
      const replacement = step.string("replacement");
      spec = {
        ...spec,
        replacements: [...spec.replacements, [replacement, " "]],
        firstTokenDrops: step.string("prepend_scheme", "always") === "never"
          ? undefined
          : replacement,
      };
    } else unsupported(`the decoder type "${type}" is not supported`);
  }
  if (spec.byteLevel && (spec.byteFallback || spec.replacements.length > 0)) {
    unsupported("a decoder mixing ByteLevel with SentencePiece-style steps is not supported");
  }
  return spec;
}

const encoder = new TextEncoder();

/**
 * A per-stream surface over `tokens` (the string of every id, `undefined` for holes in the
 * numbering) decoded as `spec` says.
 */
export function decoderSurface(
  spec: DecoderSpec,
  tokens: readonly (string | undefined)[],
): TokenSurface {
  let index = 0;
  let stripLeft = spec.stripStart;
  return {
    errorMode: spec.byteLevel ? "maximal-subpart" : "per-byte",
    piece(id: number): Uint8Array | string {
      const token = Number.isInteger(id) ? tokens[id] : undefined;
      if (token === undefined) {
        throw new RangeError(
          `Cannot decode token ${id}: it is not an id of this tokenizer (ids are whole numbers ` +
            `in [0, ${tokens.length}))`,
        );
      }
      const first = index++ === 0;
      if (spec.byteLevel) return fromByteLevel(token) ?? encoder.encode(token);
      const byte = spec.byteFallback ? BYTE_TOKEN.exec(token) : null;
      let text = byte ? String.fromCharCode(parseInt(byte[1]!, 16)) : token;
      if (!byte && first && spec.firstTokenDrops !== undefined) {
        text = text.replaceAll(spec.firstTokenDrops, "");
      }
      if (!byte) { for (const [from, to] of spec.replacements) text = text.replaceAll(from, to); }
      while (stripLeft > 0 && text.startsWith(" ")) {
        text = text.slice(1);
        stripLeft--;
      }
      if (text !== "") stripLeft = 0;
      return byte && text !== "" ? Uint8Array.of(text.charCodeAt(0)) : text;
    },
  };
}
