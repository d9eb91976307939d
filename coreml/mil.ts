/**
 * The in-memory MIL program: what {@link ./proto_writer.ts} encodes into model.mlmodel and what
 * {@link ./proto_reader.ts} decodes from it. It mirrors `CoreML.Specification.MILSpec` closely,
 * restricted to what llamane emits: static-shape tensors only, one block per function, no
 * control flow, no states.
 *
 * @module
 */

import type { BlobDType, TensorValues } from "./dtype.ts";
import type { TensorType } from "./tensor.ts";

/** The MIL opset of every function llamane writes: iOS18 / macOS15. */
export const OPSET = "CoreML8";

/** How model.mlmodel names weight.bin; `@model_path` is the folder that holds model.mlmodel. */
export const WEIGHT_FILE_REFERENCE = "@model_path/weights/weight.bin";

/** A compile-time tensor written into model.mlmodel itself. */
export interface ImmediateValue extends TensorType {
  /** Discriminates {@link Value}. */
  readonly kind: "immediate";
  /** The elements, in the array class of `dtype` (see `DTypeValues`). */
  readonly values: TensorValues;
}

/** A compile-time tensor stored in weight.bin. */
export interface BlobValue extends TensorType {
  /** Discriminates {@link Value}. */
  readonly kind: "blob";
  /** Element type; only some dtypes can live in weight.bin. */
  readonly dtype: BlobDType;
  /** File offset of the blob's 64-byte metadata record (not of its data). */
  readonly offsetBytes: number;
}

/** A compile-time constant: an attribute, a `const` op's `val`, or an inline op input. */
export type Value = ImmediateValue | BlobValue;

/** One argument of an op input: the name of an earlier value, or an inline constant. */
export type Binding = string | Value;

/** A named, typed value: a function input or an op output. */
export interface NamedValueType {
  /** Unique within its function. */
  readonly name: string;
  /** Its tensor type. */
  readonly type: TensorType;
}

/** One MIL operation. */
export interface Operation {
  /** The op, e.g. `linear`. */
  readonly type: string;
  /** The op's `name` attribute; independent of its output names. */
  readonly name: string;
  /**
   * Parameter name to its arguments, in the order written. A variadic parameter such as
   * `concat.values` has several; every other parameter has one.
   */
  readonly inputs: ReadonlyMap<string, readonly Binding[]>;
  /** The values it defines, with their types as the caller (or file) declares them. */
  readonly outputs: readonly NamedValueType[];
  /** Attributes other than `name`: `val` for `const`, nothing for ordinary ops. */
  readonly attributes: ReadonlyMap<string, Value>;
}

/** A straight-line list of operations in topological order and the values it returns. */
export interface Block {
  /** In topological order: every name an op binds is defined before it. */
  readonly operations: readonly Operation[];
  /** Names of the values the block returns. */
  readonly outputs: readonly string[];
}

/** One MIL function: typed inputs and one block for its opset. */
export interface MilFunction {
  /** The function's parameters, in order. */
  readonly inputs: readonly NamedValueType[];
  /** The opset its block is specialized for, {@link OPSET} for everything llamane writes. */
  readonly opset: string;
  /** The body. */
  readonly block: Block;
}

/** A MIL program: its functions by name (`main` for a single-function model). */
export interface Program {
  /** Function name to function, in the order written. */
  readonly functions: ReadonlyMap<string, MilFunction>;
}
