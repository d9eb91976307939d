/**
 * The ggml tensor types a GGUF file may name: their numeric ids and block layouts. A block of a
 * quantized type packs `blockElements` values into `blockBytes` bytes; plain types are blocks of one
 * element.
 *
 * @module
 */

/** Block layout of one ggml tensor type. */
export interface GgmlTypeLayout {
  /** Values per block (1 for plain element types). */
  readonly blockElements: number;
  /** Bytes per block. */
  readonly blockBytes: number;
}

/** The tensor types this reader supports, by name, with their layouts. */
export const SUPPORTED_GGML_TYPES = {
  F32: { blockElements: 1, blockBytes: 4 },
  F16: { blockElements: 1, blockBytes: 2 },
  BF16: { blockElements: 1, blockBytes: 2 },
  Q8_0: { blockElements: 32, blockBytes: 34 },
  Q4_0: { blockElements: 32, blockBytes: 18 },
  Q4_1: { blockElements: 32, blockBytes: 20 },
  Q4_K: { blockElements: 256, blockBytes: 144 },
  Q5_K: { blockElements: 256, blockBytes: 176 },
  Q6_K: { blockElements: 256, blockBytes: 210 },
} as const satisfies Record<string, GgmlTypeLayout>;

/** A supported ggml tensor type. */
export type GgmlType = keyof typeof SUPPORTED_GGML_TYPES;

/** Every ggml type id llama.cpp has defined, so that an unsupported one is named in errors. */
const GGML_TYPE_NAMES: readonly (string | undefined)[] = [
  "F32",
  "F16",
  "Q4_0",
  "Q4_1",
  undefined,
  undefined,
  "Q5_0",
  "Q5_1",
  "Q8_0",
  "Q8_1",
  "Q2_K",
  "Q3_K",
  "Q4_K",
  "Q5_K",
  "Q6_K",
  "Q8_K",
  "IQ2_XXS",
  "IQ2_XS",
  "IQ3_XXS",
  "IQ1_S",
  "IQ4_NL",
  "IQ3_S",
  "IQ2_S",
  "IQ4_XS",
  "I8",
  "I16",
  "I32",
  "I64",
  "F64",
  "IQ1_M",
  "BF16",
  undefined,
  undefined,
  undefined,
  "TQ1_0",
  "TQ2_0",
  undefined,
  undefined,
  undefined,
  "MXFP4",
];

/** The name of ggml type `id` (e.g. `Q4_K`), or `type <id>` when no ggml type has that id. */
export function ggmlTypeName(id: number): string {
  return GGML_TYPE_NAMES[id] ?? `type ${id}`;
}

/** The supported type with id `id`, or `undefined`. */
export function supportedGgmlType(id: number): GgmlType | undefined {
  const name = GGML_TYPE_NAMES[id];
  return name !== undefined && Object.hasOwn(SUPPORTED_GGML_TYPES, name)
    ? name as GgmlType
    : undefined;
}
