/**
 * The top-level Core ML model (`CoreML.Specification.Model`) restricted to ML Programs: the
 * specification version, the description Core ML shows callers (features, functions, metadata)
 * and the MIL program.
 *
 * @module
 */

import { MilProgramError } from "./errors.ts";
import type { MilFunction, Program } from "./mil.ts";

/** Specification version of everything llamane writes (iOS18 / macOS15, opset CoreML8). */
export const SPECIFICATION_VERSION = 9;

/** Element types a model input or output may have (others must be cast inside the program). */
export type FeatureDType = "fp16" | "fp32" | "int32";

/** A multi-array input or output as Core ML callers see it. */
export interface FeatureDescription {
  /** Equal to the MIL function input or block output name. */
  readonly name: string;
  /** Free text; may be empty. */
  readonly shortDescription: string;
  /** Element type. */
  readonly dtype: FeatureDType;
  /** Fixed shape. */
  readonly shape: readonly number[];
}

/** The inputs and outputs of one function of a multifunction model. */
export interface FunctionDescription {
  /** The MIL function name. */
  readonly name: string;
  /** One per function input, in order. */
  readonly inputs: readonly FeatureDescription[];
  /** One per block output, in order. */
  readonly outputs: readonly FeatureDescription[];
}

/** Free-form model metadata. Empty strings are left out of the file. */
export interface Metadata {
  /** One-line description. */
  readonly shortDescription: string;
  /** Model version. */
  readonly versionString: string;
  /** Who made it. */
  readonly author: string;
  /** The weights' licence. */
  readonly license: string;
  /** Any other key/value pairs. */
  readonly userDefined: ReadonlyMap<string, string>;
}

/**
 * What a model tells its callers. A single-function model describes `main` in `inputs` and
 * `outputs` and leaves `functions` empty; a multifunction model does the opposite and names its
 * default function.
 */
export interface ModelDescription {
  /** Single-function form: the inputs of `main`. */
  readonly inputs: readonly FeatureDescription[];
  /** Single-function form: the outputs of `main`. */
  readonly outputs: readonly FeatureDescription[];
  /** Multifunction form: one entry per program function, in program order. */
  readonly functions: readonly FunctionDescription[];
  /** Multifunction form: the function Core ML runs when none is named; `""` otherwise. */
  readonly defaultFunctionName: string;
  /** Author, licence and the like. */
  readonly metadata: Metadata;
}

/** A Core ML ML Program model: what model.mlmodel holds. */
export interface Model {
  /** {@link SPECIFICATION_VERSION} for everything llamane writes. */
  readonly specificationVersion: number;
  /** The callers' view of the program. */
  readonly description: ModelDescription;
  /** The MIL program. */
  readonly program: Program;
}

/** Metadata with every field empty. */
export const EMPTY_METADATA: Metadata = {
  shortDescription: "",
  versionString: "",
  author: "",
  license: "",
  userDefined: new Map(),
};

/**
 * The feature descriptions that match a function's inputs and outputs exactly, as Core ML
 * requires. Each must be fp16, fp32 or int32.
 *
 * @param name the function's name in the program
 * @throws {MilProgramError} when an output is undefined or an input or output has a dtype Core ML
 * cannot pass to callers
 */
export function describeFunction(name: string, fn: MilFunction): FunctionDescription {
  const outputTypes = new Map(
    fn.block.operations.flatMap((op) => op.outputs).map((o) => [o.name, o.type]),
  );
  for (const input of fn.inputs) outputTypes.set(input.name, input.type);
  const feature = (valueName: string, role: string): FeatureDescription => {
    const type = outputTypes.get(valueName);
    if (type === undefined) {
      throw new MilProgramError(
        `Cannot describe function "${name}": ${role} "${valueName}" is not defined in it`,
        { functionName: name },
      );
    }
    if (type.dtype !== "fp16" && type.dtype !== "fp32" && type.dtype !== "int32") {
      throw new MilProgramError(
        `Cannot describe function "${name}": ${role} "${valueName}" has dtype "${type.dtype}", ` +
          `but model inputs and outputs must be fp16, fp32 or int32 (cast inside the program)`,
        { functionName: name },
      );
    }
    if (type.shape.length === 0) {
      throw new MilProgramError(
        `Cannot describe function "${name}": ${role} "${valueName}" is a scalar, but Core ML ` +
          `multi-arrays need at least one dimension (use shape [1])`,
        { functionName: name },
      );
    }
    return { name: valueName, shortDescription: "", dtype: type.dtype, shape: type.shape };
  };
  return {
    name,
    inputs: fn.inputs.map((i) => feature(i.name, "input")),
    outputs: fn.block.outputs.map((o) => feature(o, "output")),
  };
}
