/**
 * Graph breaks: the static model is cut before the first block and after the last, giving three
 * Core ML programs (embedding, blocks, head) joined by the hidden state, or one program when
 * breaks are off (docs/reference/static-llm.md section 3). Each piece is emitted here with exactly
 * the inputs and outputs of the I/O contract that it touches.
 *
 * @module
 */

import type { Var } from "../../coreml/builder.ts";
import {
  FREQS_COS,
  FREQS_SIN,
  hidden,
  kCache,
  LAST_VALID_TOKEN_POS,
  MASK,
  TOKENS,
  vCache,
} from "../../bundle/io_names.ts";
import type { LayerRange } from "../chunks.ts";
import { emitBlock } from "./block.ts";
import type { ExportContext } from "./context.ts";
import type { GraphEmitter } from "./emitter.ts";
import { emitEmbedding } from "./embedding.ts";
import { emitHead } from "./head.ts";
import { emitRopeTables } from "./rope.ts";

/** Which part of the network a piece computes. */
export interface PieceLayout {
  /** `embedding`, `blocks`, `head`, or `model` for the unbroken program. */
  readonly name: string;
  readonly embedding: boolean;
  /** Layers `[firstLayer, endLayer)`; empty when equal. */
  readonly firstLayer: number;
  readonly endLayer: number;
  readonly head: boolean;
}

/**
 * The pieces of a model with `nLayers` layers, in execution order: with graph breaks, the
 * embedding, one `blocks` piece per layer chunk (`blocks_0`, `blocks_1`, ... when there are
 * several) and the head.
 */
export function pieceLayouts(
  nLayers: number,
  graphBreaks: boolean,
  chunks: readonly LayerRange[] = [{ firstLayer: 0, endLayer: nLayers }],
): PieceLayout[] {
  if (!graphBreaks) {
    return [{ name: "model", embedding: true, firstLayer: 0, endLayer: nLayers, head: true }];
  }
  return [
    { name: "embedding", embedding: true, firstLayer: 0, endLayer: 0, head: false },
    ...chunks.map((range, i) => ({
      name: chunks.length === 1 ? "blocks" : `blocks_${i}`,
      embedding: false,
      ...range,
      head: false,
    })),
    { name: "head", embedding: false, firstLayer: nLayers, endLayer: nLayers, head: true },
  ];
}

/** Emits one piece as the function `e` builds, for calls of `callLength` tokens. */
export async function emitPiece(
  e: GraphEmitter,
  ctx: ExportContext,
  piece: PieceLayout,
  callLength: number,
): Promise<void> {
  const { dim, nKvHeads, headDim } = ctx.config;
  const { cacheLen } = ctx.options;
  const float = (shape: number[]) => ({ dtype: e.dtype, shape });

  let x: Var = piece.embedding
    ? await emitEmbedding(
      e,
      ctx,
      e.fn.input(TOKENS, { dtype: "int32", shape: [1, callLength] }),
      hidden(0),
    )
    : e.fn.input(hidden(piece.firstLayer), float([1, callLength, dim]));
  if (piece.embedding && !piece.head && piece.endLayer === 0) e.fn.output(x);

  if (piece.endLayer > piece.firstLayer) {
    const mask = e.fn.input(MASK, float([1, callLength, cacheLen + callLength]));
    const rope = emitRopeTables(
      e,
      e.fn.input(FREQS_COS, float([callLength, headDim / 2])),
      e.fn.input(FREQS_SIN, float([callLength, headDim / 2])),
    );
    const caches = [];
    for (let layer = piece.firstLayer; layer < piece.endLayer; layer++) {
      caches.push({
        kCache: e.fn.input(kCache(layer), float([1, nKvHeads, cacheLen, headDim])),
        vCache: e.fn.input(vCache(layer), float([1, nKvHeads, cacheLen, headDim])),
      });
    }
    for (let layer = piece.firstLayer; layer < piece.endLayer; layer++) {
      const last = layer === piece.endLayer - 1;
      const outputName = last && !piece.head ? hidden(layer + 1) : undefined;
      x = await emitBlock(
        e,
        ctx,
        x,
        layer,
        { mask, rope, ...caches[layer - piece.firstLayer]! },
        outputName,
      );
      if (outputName !== undefined) e.fn.output(x);
    }
  }

  if (piece.head) {
    // Multifunction bundles return only the logits of the last real token: one row through the
    // head instead of L.
    if (ctx.options.multifunction) {
      const position = e.fn.input(LAST_VALID_TOKEN_POS, { dtype: "int32", shape: [1] });
      // Rows first, so the row is picked by a gather along axis 0, as for the embedding.
      const rows = e.op("reshape", { x, shape: e.ints([-1, dim]) }, "hidden_rows");
      const row = e.op("gather", {
        x: rows,
        indices: position,
        axis: e.int(0),
        batch_dims: e.int(0),
        validate_indices: e.bool(false),
      }, "last_hidden_row");
      x = e.op("reshape", { x: row, shape: e.ints([1, 1, dim]) }, "last_hidden");
    }
    await emitHead(e, ctx, x);
  }
}
