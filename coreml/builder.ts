/**
 * A small builder for MIL programs that keeps them valid by construction: identifiers are
 * checked as they are given, every value name is unique within its function, constants go where
 * coremltools would put them (inline below 10 elements, weight.bin otherwise), and the model
 * description is derived from the functions so it can never disagree with them.
 *
 * @example A single-function program
 * ```ts
 * import assert from "node:assert";
 * import { ProgramBuilder } from "./builder.ts";
 * import { BlobStorageWriter } from "./blob_storage.ts";
 * import { scalar, tensor } from "./tensor.ts";
 *
 * using weights = BlobStorageWriter.create(await Deno.makeTempFile());
 * const program = new ProgramBuilder({ weights });
 * const main = program.function("main");
 * const x = main.input("x", { dtype: "fp16", shape: [1, 4] });
 * const w = main.const("w", tensor("fp16", [3, 4], new Array(12).fill(0.5)));
 * const y = main.op("linear", { x, weight: w }, { dtype: "fp16", shape: [1, 3] }, { name: "y" });
 * const p = main.op("softmax", { x: y, axis: scalar("int32", -1) }, y.type, { name: "p" });
 * main.output(p);
 * const model = program.build({ metadata: { author: "llamane" } });
 * assert.strictEqual(model.description.outputs[0]?.name, "p");
 * ```
 *
 * @module
 */

import { type BlobDType, isBlobDType } from "./dtype.ts";
import { MilProgramError } from "./errors.ts";
import { checkIdentifier } from "./identifier.ts";
import { type Binding, type MilFunction, type Operation, OPSET, type Value } from "./mil.ts";
import {
  describeFunction,
  EMPTY_METADATA,
  type Metadata,
  type Model,
  SPECIFICATION_VERSION,
} from "./model.ts";
import { checkShape, checkTensor, type Tensor, type TensorType, tensorType } from "./tensor.ts";
import { validateModel } from "./validate.ts";

/** coremltools moves a constant to weight.bin from this many elements on. */
export const MIN_BLOB_ELEMENTS = 10;

/** Where large constants are written: a `BlobStorageWriter`, or anything that appends alike. */
export interface BlobSink {
  /** Stores the values and returns the offset of their metadata record. */
  append(tensor: Tensor<BlobDType>): number;
}

/** A value defined in a function: a function input or an op output. */
export class Var {
  /** Its name, unique within its function. */
  readonly name: string;
  /** Its tensor type. */
  readonly type: TensorType;
  /** The function that defines it. */
  readonly owner: FunctionBuilder;

  /** Made by {@link FunctionBuilder} only. */
  constructor(owner: FunctionBuilder, name: string, type: TensorType) {
    this.owner = owner;
    this.name = name;
    this.type = type;
  }
}

/**
 * An op input: a value of the same function, several values (a variadic parameter such as
 * `concat.values`), or a tensor constant. For ordinary ops a tensor becomes its own `const` op
 * named `<op>_<param>_<k>`, bound by name; for `constexpr_*` ops it is written inline in the
 * binding, as coremltools does at opset CoreML8.
 */
export type OpInput = Var | readonly Var[] | Tensor;

/** Options of {@link FunctionBuilder.op}. */
export interface OpOptions {
  /**
   * The op's name, which a single-output op also gives its output. Must be unused in the
   * function.
   * @default `<type>_<k>` with the first unused k
   */
  readonly name?: string;
}

/** Options of {@link ProgramBuilder.build}. */
export interface BuildOptions {
  /** Author, licence, description and user-defined keys; unset fields stay empty. */
  readonly metadata?: Partial<Metadata>;
  /**
   * Describe the model in multifunction form with this default function. Required when the
   * program has several functions or its one function is not named `main`.
   */
  readonly defaultFunctionName?: string;
}

/** Builds one function: inputs, constants, ops and outputs, in order. */
export class FunctionBuilder {
  /** The function's name in the program. */
  readonly name: string;
  readonly #weights: BlobSink | undefined;
  readonly #inputs: { name: string; type: TensorType }[] = [];
  readonly #operations: Operation[] = [];
  readonly #outputs: string[] = [];
  readonly #names = new Set<string>();

  /** Made by {@link ProgramBuilder.function} only. */
  constructor(name: string, weights: BlobSink | undefined) {
    this.name = name;
    this.#weights = weights;
  }

  /** Declares the next function input. Its dtype must be fp16, fp32 or int32. */
  input(name: string, type: TensorType): Var {
    this.#claim(name, `an input of function "${this.name}"`);
    const checked = tensorType(type.dtype, type.shape);
    this.#inputs.push({ name, type: checked });
    return new Var(this, name, checked);
  }

  /**
   * Adds a `const` op named `name` holding `tensor`, inline when it is small (or a bool or
   * string), in weight.bin otherwise.
   *
   * @throws {MilProgramError} when the name is taken or invalid, or a large constant has no
   * weights writer to go to
   */
  const(name: string, tensor: Tensor): Var {
    this.#claim(name, `const "${name}" of function "${this.name}"`);
    const val = this.#value(tensor, `const "${name}"`);
    const type = { dtype: tensor.dtype, shape: [...tensor.shape] };
    this.#operations.push({
      type: "const",
      name,
      inputs: new Map(),
      outputs: [{ name, type }],
      attributes: new Map([["val", val]]),
    });
    return new Var(this, name, type);
  }

  /**
   * Adds an op with one output of the given type (not inferred: the caller knows the op's
   * semantics, and coremltools checks them when validating).
   */
  op(
    type: string,
    inputs: Readonly<Record<string, OpInput>>,
    output: TensorType,
    options: OpOptions = {},
  ): Var {
    return this.#add(type, inputs, [output], options, false)[0]!;
  }

  /** Adds an op with several outputs (e.g. `split`), named `<name>_0`, `<name>_1`, .... */
  multiOp(
    type: string,
    inputs: Readonly<Record<string, OpInput>>,
    outputs: readonly TensorType[],
    options: OpOptions = {},
  ): Var[] {
    return this.#add(type, inputs, outputs, options, true);
  }

  /** Appends values to the function's outputs. */
  output(...values: Var[]): void {
    for (const v of values) {
      this.#own(v, "output");
      if (this.#outputs.includes(v.name)) {
        throw new MilProgramError(
          `Cannot add output "${v.name}" to function "${this.name}": it is already an output`,
          { functionName: this.name },
        );
      }
      this.#outputs.push(v.name);
    }
  }

  /** The function built so far. */
  toFunction(): MilFunction {
    return {
      inputs: [...this.#inputs],
      opset: OPSET,
      block: { operations: [...this.#operations], outputs: [...this.#outputs] },
    };
  }

  #add(
    type: string,
    inputs: Readonly<Record<string, OpInput>>,
    outputs: readonly TensorType[],
    options: OpOptions,
    multi: boolean,
  ): Var[] {
    checkIdentifier(type, "an op type", { functionName: this.name });
    const name = options.name ?? this.#fresh(type);
    this.#claim(name, `a ${type} op of function "${this.name}"`);
    const inline = type.startsWith("constexpr_");
    const bindings = new Map<string, Binding[]>();
    for (const [param, input] of Object.entries(inputs)) {
      checkIdentifier(param, `a parameter of op "${name}"`, { functionName: this.name });
      if (input instanceof Var) {
        this.#own(input, `input "${param}" of op "${name}"`);
        bindings.set(param, [input.name]);
      } else if (Array.isArray(input)) {
        for (const v of input) this.#own(v, `input "${param}" of op "${name}"`);
        bindings.set(param, input.map((v: Var) => v.name));
      } else {
        const tensor = input as Tensor;
        bindings.set(param, [
          inline
            ? this.#value(tensor, `input "${param}" of op "${name}"`)
            : this.const(this.#fresh(`${name}_${param}`), tensor).name,
        ]);
      }
    }
    const vars = outputs.map((t, i) => {
      const outputName = multi ? `${name}_${i}` : name;
      if (multi) this.#claim(outputName, `output ${i} of op "${name}"`);
      return new Var(this, outputName, tensorType(t.dtype, t.shape));
    });
    this.#operations.push({
      type,
      name,
      inputs: bindings,
      outputs: vars.map((v) => ({ name: v.name, type: v.type })),
      attributes: new Map(),
    });
    return vars;
  }

  /** A constant's Value: immediate when small or not storable in weight.bin, else a blob. */
  #value(tensor: Tensor, what: string): Value {
    checkTensor(tensor, `${what} of function "${this.name}"`);
    const { dtype, shape } = tensor;
    const count = checkShape(shape);
    if (count < MIN_BLOB_ELEMENTS || !isBlobDType(dtype)) {
      return { kind: "immediate", dtype, shape: [...shape], values: tensor.values };
    }
    if (this.#weights === undefined) {
      throw new MilProgramError(
        `Cannot add ${what} of function "${this.name}": its ${count} elements go to weight.bin, ` +
          `but the ProgramBuilder was made without a weights writer`,
        { functionName: this.name },
      );
    }
    const offsetBytes = this.#weights.append(tensor as Tensor<BlobDType>);
    return { kind: "blob", dtype, shape: [...shape], offsetBytes };
  }

  /** `<base>_<k>` with the first k that leaves the name unused, as coremltools names values. */
  #fresh(base: string): string {
    for (let k = 0;; k++) {
      const name = `${base}_${k}`;
      if (!this.#names.has(name)) return name;
    }
  }

  #claim(name: string, what: string): void {
    checkIdentifier(name, what, { functionName: this.name });
    if (this.#names.has(name)) {
      throw new MilProgramError(
        `Cannot name ${what} "${name}": the function already uses that name`,
        { functionName: this.name },
      );
    }
    this.#names.add(name);
  }

  #own(v: Var, what: string): void {
    if (v.owner !== this) {
      throw new MilProgramError(
        `Cannot use "${v.name}" as ${what} in function "${this.name}": it belongs to function ` +
          `"${v.owner.name}"`,
        { functionName: this.name },
      );
    }
  }
}

/** Builds a program of one or more functions and its model. */
export class ProgramBuilder {
  readonly #weights: BlobSink | undefined;
  readonly #functions = new Map<string, FunctionBuilder>();

  /**
   * Starts an empty program.
   *
   * @param options.weights where constants of {@link MIN_BLOB_ELEMENTS} or more elements are
   * written; all functions share it, so identical constants are stored once
   */
  constructor(options: { readonly weights?: BlobSink } = {}) {
    this.#weights = options.weights;
  }

  /** Starts a new function. Functions are written in the order they are started. */
  function(name: string): FunctionBuilder {
    checkIdentifier(name, "function", { functionName: name });
    if (this.#functions.has(name)) {
      throw new MilProgramError(`Cannot add function "${name}": the program already has one`, {
        functionName: name,
      });
    }
    const fn = new FunctionBuilder(name, this.#weights);
    this.#functions.set(name, fn);
    return fn;
  }

  /**
   * The model: specification version 9, the program, and a description derived from it.
   *
   * @throws {MilProgramError} when the program or its description is invalid
   */
  build(options: BuildOptions = {}): Model {
    const functions = new Map([...this.#functions].map(([name, fn]) => [name, fn.toFunction()]));
    const multifunction = options.defaultFunctionName !== undefined;
    const described = [...functions].map(([name, fn]) => describeFunction(name, fn));
    const main = described[0];
    if (!multifunction && (described.length !== 1 || main?.name !== "main")) {
      throw new MilProgramError(
        `Cannot build model: functions [${[...functions.keys()]}] need a defaultFunctionName; ` +
          `only a program with the single function "main" can leave it out`,
      );
    }
    const model: Model = {
      specificationVersion: SPECIFICATION_VERSION,
      description: {
        inputs: multifunction ? [] : main!.inputs,
        outputs: multifunction ? [] : main!.outputs,
        functions: multifunction ? described : [],
        defaultFunctionName: options.defaultFunctionName ?? "",
        metadata: { ...EMPTY_METADATA, ...options.metadata },
      },
      program: { functions },
    };
    validateModel(model);
    return model;
  }
}
