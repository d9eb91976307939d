/**
 * The manifest checked against the programs it describes. The runtime binds buffers by the
 * manifest's lists and sizes caches, masks and RoPE tables from its model config, so a manifest
 * that disagrees with its programs (two cache inputs swapped, `freqs_cos` and `freqs_sin`
 * swapped, a smaller vocabulary) would run and give other text without a word. Every input and
 * output must match its program's in order, name, type and shape; every shape must be the one the
 * I/O contract gives for the model config; and the weights must hold at least the bytes the
 * config's parameters need.
 *
 * @module
 */

import { MilProgramError } from "../coreml/errors.ts";
import { describeFunction, type FeatureDescription } from "../coreml/model.ts";
import type { PackageContents } from "../coreml/package.ts";
import { parameterCount } from "../llama/config.ts";
import {
  FREQS_COS,
  FREQS_SIN,
  hidden,
  kCache,
  kNew,
  LAST_VALID_TOKEN_POS,
  LOGITS,
  logitsPart,
  MASK,
  TOKENS,
  vCache,
  vNew,
} from "./io_names.ts";
import {
  BundleError,
  type BundleManifest,
  type FunctionSpec,
  type IoSpec,
  MANIFEST_FILE,
} from "./manifest.ts";
import { readPiecePackage } from "./piece_package.ts";

/** The fewest bits any exported weight is stored in (int4). */
const MIN_BITS_PER_PARAMETER = 4;

/** The type the I/O contract gives each name, for a call of `callLength` tokens. */
function contractTypes(manifest: BundleManifest, callLength: number) {
  const { dim, nLayers, nKvHeads, headDim, vocabSize } = manifest.model;
  const cache = manifest.export.cacheLen;
  const types = new Map<string, { int: boolean; shapes: number[][] }>([
    [TOKENS, { int: true, shapes: [[1, callLength]] }],
    [LAST_VALID_TOKEN_POS, { int: true, shapes: [[1]] }],
    [MASK, { int: false, shapes: [[1, callLength, cache + callLength]] }],
    [FREQS_COS, { int: false, shapes: [[callLength, headDim / 2]] }],
    [FREQS_SIN, { int: false, shapes: [[callLength, headDim / 2]] }],
    [LOGITS, { int: false, shapes: [[1, callLength, vocabSize], [1, 1, vocabSize]] }],
  ]);
  for (let layer = 0; layer <= nLayers; layer++) {
    types.set(hidden(layer), { int: false, shapes: [[1, callLength, dim]] });
    if (layer === nLayers) break;
    for (const name of [kCache(layer), vCache(layer)]) {
      types.set(name, { int: false, shapes: [[1, nKvHeads, cache, headDim]] });
    }
    for (const name of [kNew(layer), vNew(layer)]) {
      types.set(name, { int: false, shapes: [[1, nKvHeads, callLength, headDim]] });
    }
  }
  return types;
}

/** A part of the logits (`logits_<i>`) has the logits' type, narrower along the vocabulary. */
function logitsPartType(manifest: BundleManifest, callLength: number, io: IoSpec) {
  const width = io.shape[2] ?? 0;
  if (!/^logits_\d+$/.test(io.name) || width < 1 || width > manifest.model.vocabSize) {
    return undefined;
  }
  return { int: false, shapes: [[1, callLength, width], [1, 1, width]] };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks one function's lists against its program and the contract. */
function checkFunction(
  manifest: BundleManifest,
  spec: FunctionSpec,
  described: { inputs: readonly FeatureDescription[]; outputs: readonly FeatureDescription[] },
  where: string,
  fail: (where: string, detail: string) => never,
): void {
  const contract = contractTypes(manifest, spec.callLength);
  const compare = (key: "inputs" | "outputs") => {
    const listed: readonly IoSpec[] = spec[key];
    const actual = described[key];
    if (listed.length !== actual.length) {
      fail(`${where}.${key}`, `lists ${listed.length}, the program has ${actual.length}`);
    }
    listed.forEach((io, i) => {
      const program = actual[i]!;
      if (io.name !== program.name || io.dtype !== program.dtype) {
        fail(`${where}.${key}[${i}]`, "differs from the program's in name or type");
      }
      if (!sameShape(io.shape, program.shape)) {
        fail(`${where}.${key}[${i}]`, "differs from the program's in shape");
      }
      const expected = contract.get(io.name) ?? logitsPartType(manifest, spec.callLength, io);
      if (expected === undefined) fail(`${where}.${key}[${i}]`, "is not in the I/O contract");
      if (expected!.int !== (io.dtype === "int32")) {
        fail(`${where}.${key}[${i}]`, `must be ${expected!.int ? "int32" : "a float type"}`);
      }
      if (!expected!.shapes.some((shape) => sameShape(shape, io.shape))) {
        fail(`${where}.${key}[${i}]`, "has a shape the model config does not give it");
      }
    });
  };
  compare("inputs");
  compare("outputs");
}

/**
 * Every layer's caches feed exactly one piece, and every layer's new entries leave exactly one;
 * the mask feeds every piece that holds layers (one per layer chunk), so at least one.
 */
function checkLayerCoverage(
  manifest: BundleManifest,
  fail: (where: string, detail: string) => never,
): void {
  const seen = new Map<string, number>();
  for (const piece of manifest.pieces) {
    const first = piece.functions[0]!;
    for (const io of [...first.inputs, ...first.outputs]) {
      seen.set(io.name, (seen.get(io.name) ?? 0) + 1);
    }
  }
  if ((seen.get(MASK) ?? 0) < 1) fail("pieces", `must take "${MASK}" in at least one piece`);
  checkLogitsCoverage(manifest, fail);
  const once = [TOKENS];
  for (let layer = 0; layer < manifest.model.nLayers; layer++) {
    once.push(kCache(layer), vCache(layer), kNew(layer), vNew(layer));
  }
  for (const name of once) {
    if (seen.get(name) !== 1) {
      fail("pieces", `must take or return "${name}" in exactly one piece`);
    }
  }
}

/** The logits leave exactly one piece, whole or as parts `logits_0..k-1` that add up to V. */
function checkLogitsCoverage(
  manifest: BundleManifest,
  fail: (where: string, detail: string) => never,
): void {
  const outputs = manifest.pieces.flatMap((p) => p.functions[0]!.outputs);
  const whole = outputs.filter((io) => io.name === LOGITS);
  const parts = outputs.filter((io) => /^logits_\d+$/.test(io.name));
  if (whole.length === 1 && parts.length === 0) return;
  const names = parts.map((io) => io.name);
  const width = parts.reduce((sum, io) => sum + io.shape[2]!, 0);
  if (
    whole.length > 0 || parts.length === 0 || width !== manifest.model.vocabSize ||
    names.some((name, i) => name !== logitsPart(i))
  ) {
    fail("pieces", `must return "${LOGITS}" once, or its parts in order covering the vocabulary`);
  }
}

/**
 * Checks the manifest against the packages of its pieces (in manifest order).
 *
 * @throws {BundleError} naming the first manifest field that disagrees with its program
 */
export function checkPrograms(
  bundle: string,
  manifest: BundleManifest,
  packages: readonly PackageContents[],
): void {
  const fail = (where: string, detail: string): never => {
    throw new BundleError(bundle, `${MANIFEST_FILE}: "${where}" ${detail}`);
  };
  checkLayerCoverage(manifest, fail);
  let weightBytes = 0;
  manifest.pieces.forEach((piece, p) => {
    const contents = packages[p]!;
    const size = contents.weightsPath === undefined ? 0 : Deno.statSync(contents.weightsPath).size;
    if (size !== piece.weightBytes) {
      fail(`pieces[${p}].weightBytes`, `says ${piece.weightBytes}, weight.bin holds ${size}`);
    }
    weightBytes += size;
    piece.functions.forEach((spec, f) => {
      const where = `pieces[${p}].functions[${f}]`;
      const program = contents.model.program.functions.get(spec.name);
      if (program === undefined) fail(where, "names a function the program does not have");
      let described;
      try {
        described = describeFunction(spec.name, program!);
      } catch (error) {
        if (!(error instanceof MilProgramError)) throw error;
        return fail(where, `has a program that cannot be described: ${error.message}`);
      }
      checkFunction(manifest, spec, described, where, fail);
    });
  });
  const needed = Math.ceil(parameterCount(manifest.model) * MIN_BITS_PER_PARAMETER / 8);
  if (weightBytes < needed) {
    fail(
      "model",
      `describes ${parameterCount(manifest.model)} parameters, which need at least ${needed} ` +
        `bytes of weights; the pieces hold ${weightBytes}`,
    );
  }
}

/**
 * Reads the package of every piece and checks the manifest against them.
 *
 * @throws {BundleError} for a package outside the bundle or a manifest that disagrees with it
 * @throws {CoremlFormatError} for a malformed package
 */
export function readCheckedPackages(bundle: string, manifest: BundleManifest): PackageContents[] {
  const packages = manifest.pieces.map((piece) => readPiecePackage(bundle, piece));
  checkPrograms(bundle, manifest, packages);
  return packages;
}
