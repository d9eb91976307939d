/**
 * A bundle's contents, read from its files: per piece, the functions with their inputs and
 * outputs, op counts, and weight bytes by storage type.
 *
 * @module
 */

import { elementCount } from "../shape.ts";
import { DTYPE_INFO } from "../coreml/dtype.ts";
import type { NamedValueType, Value } from "../coreml/mil.ts";
import { type BundleManifest, type IoSpec, readManifest } from "./manifest.ts";
import { readCheckedPackages } from "./check_programs.ts";
import { readNeed, requirePermissions } from "../permissions.ts";

/** One function of a piece, as its program says. */
export interface FunctionReport {
  /** `main`, `prefill` or `decode`. */
  readonly name: string;
  /** Its inputs, read from the program. */
  readonly inputs: readonly IoSpec[];
  /** Its outputs, read from the program. */
  readonly outputs: readonly IoSpec[];
  /** Op type to count, `const` included. */
  readonly ops: Readonly<Record<string, number>>;
}

/** One piece. */
export interface PieceReport {
  /** `embedding`, `blocks`, `head`, or `model`, as the manifest names it. */
  readonly name: string;
  /** Package directory, relative to the bundle. */
  readonly package: string;
  /** Every function of its program. */
  readonly functions: readonly FunctionReport[];
  /** Bytes of weight data by stored dtype (int4, int8, fp16, ...), each blob counted once. */
  readonly weightBytesByDType: Readonly<Record<string, number>>;
  /** Bytes shared by several functions of the piece (multifunction bundles). */
  readonly sharedWeightBytes: number;
}

/** What `llamane inspect` shows. */
export interface BundleReport {
  /** The bundle's manifest. */
  readonly manifest: BundleManifest;
  /** Per piece of the manifest, in order, what its package holds. */
  readonly pieces: readonly PieceReport[];
}

function blobValues(values: Iterable<Value | string>): Value[] {
  return [...values].filter((v): v is Value => typeof v !== "string" && v.kind === "blob");
}

/** Reads a bundle's manifest and every package it lists. Needs read permission for the bundle. */
export async function inspectBundle(bundle: string): Promise<BundleReport> {
  await requirePermissions([readNeed(bundle, "read the bundle")]);
  const manifest = await readManifest(bundle);
  const packages = readCheckedPackages(bundle, manifest);
  const pieces = manifest.pieces.map((piece, index): PieceReport => {
    const { model } = packages[index]!;
    const bytes: Record<string, number> = {};
    const blobs = new Map<number, { size: number; users: Set<string> }>();
    const functions = [...model.program.functions].map(([name, fn]): FunctionReport => {
      const ops: Record<string, number> = {};
      for (const op of fn.block.operations) {
        ops[op.type] = (ops[op.type] ?? 0) + 1;
        for (
          const blob of blobValues([...op.attributes.values(), ...[...op.inputs.values()].flat()])
        ) {
          if (blob.kind !== "blob") continue;
          let entry = blobs.get(blob.offsetBytes);
          if (entry === undefined) {
            entry = {
              size: Math.ceil((elementCount(blob.shape) * DTYPE_INFO[blob.dtype].bits) / 8),
              users: new Set(),
            };
            blobs.set(blob.offsetBytes, entry);
            bytes[blob.dtype] = (bytes[blob.dtype] ?? 0) + entry.size;
          }
          entry.users.add(name);
        }
      }
      const io = (list: readonly NamedValueType[]) =>
        list.map((v) => ({
          name: v.name,
          dtype: v.type.dtype as IoSpec["dtype"],
          shape: v.type.shape,
        }));
      const outputTypes = new Map(
        fn.block.operations.flatMap((op) => op.outputs.map((o) => [o.name, o])),
      );
      return {
        name,
        inputs: io(fn.inputs),
        outputs: io(
          fn.block.outputs.map((o) => outputTypes.get(o) ?? fn.inputs.find((i) => i.name === o)!),
        ),
        ops,
      };
    });
    const sharedWeightBytes = [...blobs.values()].filter((b) => b.users.size > 1).reduce(
      (sum, b) => sum + b.size,
      0,
    );
    return {
      name: piece.name,
      package: piece.package,
      functions,
      weightBytesByDType: bytes,
      sharedWeightBytes,
    };
  });
  return { manifest, pieces };
}
