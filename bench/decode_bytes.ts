/**
 * The weight bytes one decode step reads, counted from a bundle's own programs: every weight.bin
 * blob that the function running a one-token call refers to, except tables read through a
 * `gather` (the token embedding), of which one row is read per token. Divided by the machine's
 * memory bandwidth, this is the fastest decode can go when reading weights is all it does.
 *
 * @module
 */

import { readManifest } from "../bundle/manifest.ts";
import { BlobStorageReader } from "../coreml/blob_storage.ts";
import type { Binding, BlobValue, MilFunction, Operation } from "../coreml/mil.ts";
import { readPackage } from "../coreml/package.ts";

/** The blobs an op reads directly: its inline constant inputs and constant attributes. */
function blobsOf(op: Operation): BlobValue[] {
  const values = [...op.attributes.values(), ...[...op.inputs.values()].flat()];
  return values.filter((v): v is BlobValue => typeof v !== "string" && v.kind === "blob");
}

/**
 * Offsets of the blobs a function reads only through `gather`: those of the op making the
 * gathered table, and of the ops before it (a dequantizing op reads data and scales).
 */
function gatheredBlobs(fn: MilFunction): Set<number> {
  const producers = new Map<string, Operation>();
  for (const op of fn.block.operations) for (const out of op.outputs) producers.set(out.name, op);
  const gathered = new Set<number>();
  const visit = (binding: Binding | undefined) => {
    const op = typeof binding === "string" ? producers.get(binding) : undefined;
    if (op === undefined) return;
    for (const blob of blobsOf(op)) gathered.add(blob.offsetBytes);
    for (const input of op.inputs.values()) input.forEach(visit);
  };
  for (const op of fn.block.operations) {
    if (op.type === "gather") visit(op.inputs.get("x")?.[0]);
  }
  return gathered;
}

/** Bytes read per decode token, in total and per piece. */
export interface DecodeBytes {
  readonly total: number;
  readonly byPiece: Readonly<Record<string, number>>;
}

/**
 * Counts the weight bytes a one-token call of `bundle` reads: per piece, the `decode` function of
 * multifunction bundles, else the only one. A blob shared by several ops counts once.
 */
export async function decodeWeightBytes(bundle: string): Promise<DecodeBytes> {
  const manifest = await readManifest(bundle);
  const byPiece: Record<string, number> = {};
  for (const piece of manifest.pieces) {
    const contents = readPackage(`${bundle}/${piece.package}`);
    const functions = contents.model.program.functions;
    const fn = functions.get("decode") ?? functions.values().next().value!;
    const gathered = gatheredBlobs(fn);
    const blobs = new Map<number, BlobValue>();
    for (const op of fn.block.operations) {
      for (const blob of blobsOf(op)) blobs.set(blob.offsetBytes, blob);
    }
    let bytes = 0;
    if (blobs.size > 0) {
      using reader = BlobStorageReader.open(contents.weightsPath!);
      for (const [offset, blob] of blobs) {
        const stored = reader.record(offset, blob.dtype).sizeBytes;
        bytes += gathered.has(offset) ? stored / blob.shape[0]! : stored;
      }
    }
    byPiece[piece.name] = bytes;
  }
  return { total: Object.values(byPiece).reduce((a, b) => a + b, 0), byPiece };
}
