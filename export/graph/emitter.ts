/**
 * A thin layer over the MIL `FunctionBuilder` that infers every op's output type from its inputs
 * (coreml/ops.ts), so the graph code states only what it computes, and shapes can never be declared
 * wrong.
 *
 * @module
 */

import type { FunctionBuilder, OpInput, Var } from "../../coreml/builder.ts";
import { scalar, type Tensor, tensor } from "../../coreml/tensor.ts";
import { inferOutputTypes, type OpArgument } from "../../coreml/ops.ts";
import type { FloatDType } from "../../coreml/dtype.ts";

/** Constants up to this size are parameters (axes, shapes) whose values inference may read. */
const PARAMETER_ELEMENTS = 16;

function argument(input: Var | Tensor): OpArgument {
  if (!("values" in input)) return { type: input.type };
  const values = input.values;
  if (Array.isArray(values)) return { type: input, value: values };
  if (input.dtype === "fp16" || values.length > PARAMETER_ELEMENTS) return { type: input };
  return { type: input, value: Array.from(values as ArrayLike<number>) };
}

/** Emits ops into one function, in the model's float dtype. */
export class GraphEmitter {
  /** The function being built. */
  readonly fn: FunctionBuilder;
  /** Float type of activations and weights. */
  readonly dtype: FloatDType;

  constructor(fn: FunctionBuilder, dtype: FloatDType) {
    this.fn = fn;
    this.dtype = dtype;
  }

  /** Adds a single-output op; `name` also names its output. */
  op(type: string, inputs: Readonly<Record<string, OpInput>>, name?: string): Var {
    const [output, ...rest] = this.#types(type, inputs);
    if (output === undefined || rest.length > 0) {
      throw new TypeError(`Cannot emit "${type}" as a single-output op`);
    }
    return this.fn.op(type, inputs, output, name === undefined ? {} : { name });
  }

  /** Adds an op with several outputs, such as `split`. */
  multiOp(type: string, inputs: Readonly<Record<string, OpInput>>): Var[] {
    return this.fn.multiOp(type, inputs, this.#types(type, inputs));
  }

  /** A scalar of the model's float dtype. */
  float(value: number): Tensor {
    return scalar(this.dtype, value);
  }

  /** An int32 vector, for shapes, axes and permutations. */
  ints(values: readonly number[]): Tensor {
    return tensor("int32", [values.length], values);
  }

  /** A bool scalar, for flags such as `transpose_y`. */
  bool(value: boolean): Tensor {
    return scalar("bool", value);
  }

  /** An int32 scalar, for a single axis. */
  int(value: number): Tensor {
    return scalar("int32", value);
  }

  #types(type: string, inputs: Readonly<Record<string, OpInput>>) {
    const args = new Map(
      Object.entries(inputs).map((
        [name, input],
      ) => [name, Array.isArray(input) ? input.map(argument) : [argument(input as Var | Tensor)]]),
    );
    return inferOutputTypes(type, args);
  }
}
