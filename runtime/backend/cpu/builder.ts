/**
 * The planner's working state for one MIL function: what it knows of each program value (its type
 * at the call length planned, its constant values, the plan tensor holding it), the plan's tensors
 * and steps so far, and when each arena tensor is last read. Lowerings add steps through it; it
 * places the arena when the plan is done.
 *
 * @module
 */

import type { Operation, Value } from "../../../coreml/mil.ts";
import type { DType } from "../../../coreml/dtype.ts";
import { float16Values, type TensorType } from "../../../coreml/tensor.ts";
import { elementCount } from "../../../shape.ts";
import { inferOutputTypes, type OpArgument } from "../../../coreml/ops.ts";
import { placeArena } from "./arena.ts";
import {
  type Plan,
  PLAN_DTYPE_BYTES,
  type PlanDType,
  type PlanStep,
  type PlanStorage,
  type PlanTensor,
  type PlanWeight,
  stepOutputs,
} from "./format.ts";

/** A function the planner cannot compile: an op it does not know or a pattern it cannot place. */
export class PlanError extends TypeError {
  constructor(detail: string) {
    super(`Cannot plan the program for the CPU backend: ${detail}`);
    this.name = "PlanError";
  }
}

const PLAN_DTYPES: Partial<Record<DType, PlanDType>> = {
  fp16: "f16",
  fp32: "f32",
  int32: "i32",
  int8: "i8",
  int4: "i4",
  uint4: "u4",
  uint6: "u6",
};

/** What the planner knows about a program value. */
interface ValueInfo {
  readonly type: TensorType;
  /** Constant values (small immediates), for parameters such as axes and shapes. */
  readonly constant?: readonly number[] | readonly string[];
  /** Plan tensor holding it, once it has storage. */
  tensor?: number;
  /** A dequantization fused into the ops that read it. */
  readonly quantized?: PlanWeight;
}

function immediateValues(value: Value): readonly number[] | readonly string[] | undefined {
  if (value.kind !== "immediate") return undefined;
  const values = value.values;
  if (Array.isArray(values)) return values as readonly string[];
  if (value.dtype === "fp16") return Array.from(float16Values(values as Uint16Array));
  return Array.from(values as ArrayLike<number>);
}

/** Builds one plan; see the module documentation. */
export class PlanBuilder {
  readonly #tensors: PlanTensor[] = [];
  readonly #steps: PlanStep[] = [];
  readonly #values = new Map<string, ValueInfo>();
  /** Function outputs, in the order the caller passes their buffers. */
  readonly #outputNames: readonly string[];
  /** Function outputs by name, to their index among the caller's output buffers. */
  readonly #outputs: ReadonlyMap<string, number>;
  /** Tensors made with "arena" storage, in order; their offsets are assigned last. */
  readonly #arenaTensors: number[] = [];
  /** Views (reshapes) to the tensor whose bytes they share. */
  readonly #viewRoots = new Map<number, number>();
  /** Step index of each tensor's last read. */
  readonly #lastRead = new Map<number, number>();
  /** Tensors read by the step being lowered, stamped with its index when it is emitted. */
  #reads: number[] = [];

  constructor(outputs: readonly string[]) {
    this.#outputNames = [...outputs];
    this.#outputs = new Map(outputs.map((name, i) => [name, i]));
  }

  fail(detail: string): never {
    throw new PlanError(detail);
  }

  // --- Program values -------------------------------------------------------------------------

  /** Binds function input `index` at its type for this call. */
  defineInput(name: string, type: TensorType, index: number): void {
    this.#values.set(name, {
      type,
      tensor: this.#tensor(type, { kind: "input", index }, `input "${name}"`),
    });
  }

  /** Registers a `const` op's value: weights stay in weight.bin, immediates go inline. */
  defineConstant(op: Operation): void {
    this.#values.set(op.outputs[0]!.name, this.#constant(op.attributes.get("val")!, op.name));
  }

  /**
   * Registers a `constexpr_blockwise_shift_scale` of constant data, scales and optional offsets
   * as a quantized weight, which the ops that read it take packed (a `dequantize` step only when
   * another op reads it).
   */
  defineQuantized(op: Operation): void {
    const [type] = inferOutputTypes(op.type, this.#arguments(op));
    const data = this.#storage(this.only(op, "data")!);
    const scale = this.#storage(this.only(op, "scale")!);
    const offsetName = this.only(op, "offset");
    const offset = offsetName === undefined ? undefined : this.#storage(offsetName);
    const dataShape = this.#tensors[data]!.shape;
    const scaleShape = this.#tensors[scale]!.shape;
    if (dataShape.length !== 2 || scaleShape[0] !== dataShape[0]) {
      this.fail(
        `op "${op.name}" quantizes a [${dataShape}] tensor by [${scaleShape}], which is not row-wise`,
      );
    }
    const group = dataShape[1]! / scaleShape[1]!;
    this.#values.set(op.outputs[0]!.name, {
      type: type!,
      quantized: offset === undefined ? { data, scale, group } : { data, scale, group, offset },
    });
  }

  /**
   * Registers a `constexpr_lut_to_dense` of constant indices and palettes as a palettized weight,
   * read packed like a quantized one.
   */
  definePalettized(op: Operation): void {
    if (op.inputs.has("vector_axis")) {
      this.fail(`op "${op.name}" has vector palettes, which llamane never writes`);
    }
    const [type] = inferOutputTypes(op.type, this.#arguments(op));
    const data = this.#storage(this.only(op, "indices")!);
    const lut = this.#storage(this.only(op, "lut")!);
    const lutShape = this.#tensors[lut]!.shape;
    if (this.#tensors[data]!.shape.length !== 2 || lutShape[1] !== 1) {
      this.fail(`op "${op.name}" has palettes [${lutShape}] that are not per group of rows`);
    }
    this.#values.set(op.outputs[0]!.name, { type: type!, quantized: { data, lut } });
  }

  /** Types `op`'s results at this call length, from its arguments' types and constants. */
  inferTypes(op: Operation): void {
    const inferred = inferOutputTypes(op.type, this.#arguments(op));
    op.outputs.forEach((o, k) => this.#values.set(o.name, { type: inferred[k]! }));
  }

  /**
   * The value name bound to `param` (argument `index`) of `op`, registering an inline constant
   * under a name of its own; undefined when absent.
   */
  arg(op: Operation, param: string, index = 0): string | undefined {
    const bound = op.inputs.get(param)?.[index];
    if (bound === undefined || typeof bound === "string") return bound;
    const name = `${op.name}::${param}::${index}`;
    if (!this.#values.has(name)) this.#values.set(name, this.#constant(bound, name));
    return name;
  }

  /** The value bound to a single-argument parameter; undefined when absent. */
  only(op: Operation, param: string): string | undefined {
    const list = op.inputs.get(param);
    if (list !== undefined && list.length !== 1) {
      this.fail(`op "${op.name}" has ${list.length} arguments for "${param}"`);
    }
    return this.arg(op, param);
  }

  /** The value's type at the call length planned. */
  type(name: string): TensorType {
    return this.#values.get(name)?.type ?? this.fail(`value "${name}" is undefined`);
  }

  /** The values of a numeric constant, if the value is one. */
  constant(name: string): readonly number[] | undefined {
    const value = this.#values.get(name)?.constant;
    return value?.every((v) => typeof v === "number") ? value as readonly number[] : undefined;
  }

  /** The numeric constant bound to `param` of `op`, which must be one if present. */
  numbers(op: Operation, param: string): readonly number[] | undefined {
    const name = this.only(op, param);
    if (name === undefined) return undefined;
    return this.constant(name) ??
      this.fail(`op "${op.name}" needs a numeric constant for "${param}"`);
  }

  isOutput(name: string): boolean {
    return this.#outputs.has(name);
  }

  /** A key equal for two weights exactly when the linear kernels read them the same way. */
  weightFormat(name: string): string {
    const info = this.#values.get(name)!;
    const q = info.quantized;
    if (q === undefined) return info.type.dtype;
    const data = this.#tensors[q.data]!;
    if (q.lut !== undefined) return `${data.dtype}/lut`;
    return `${data.dtype}/${q.group === data.shape[1] ? "channel" : q.group}`;
  }

  // --- Tensors and steps ----------------------------------------------------------------------

  /** The tensor of a value the step being lowered reads. */
  read(name: string): number {
    const tensor = this.#storage(name);
    // A view keeps the bytes it shares alive.
    this.#reads.push(this.#viewRoots.get(tensor) ?? tensor);
    return tensor;
  }

  /** A weight the step being lowered reads, packed when it is quantized. */
  weight(name: string): PlanWeight {
    return this.#values.get(name)?.quantized ?? { data: this.read(name) };
  }

  /** Value `name` read in another shape of the same element count. */
  readAs(name: string, shape: readonly number[]): number {
    return this.#view({ dtype: this.type(name).dtype, shape }, this.read(name));
  }

  /** A new tensor for a result: the caller's output buffer when it is a function output. */
  store(name: string, type: TensorType = this.type(name)): number {
    const out = this.#outputs.get(name);
    const tensor = this.#tensor(
      type,
      out === undefined ? "arena" : { kind: "output", index: out },
      `value "${name}"`,
    );
    this.#values.set(name, { type, tensor });
    return tensor;
  }

  /** A fused step's result in the shape the step computes with; the value is a view of it. */
  storeAs(name: string, shape: readonly number[]): number {
    const type = this.type(name);
    if (this.isOutput(name)) this.fail(`fused value "${name}" is a function output`);
    const tensor = this.#tensor({ dtype: type.dtype, shape }, "arena", `value "${name}"`);
    this.#values.set(name, { type, tensor: this.#view(type, tensor) });
    return tensor;
  }

  /** Binds value `name` to a view, of its own type, of the tensor of value `source`. */
  alias(name: string, source: string): void {
    const type = this.type(name);
    this.#values.set(name, { type, tensor: this.#view(type, this.read(source)) });
  }

  /** Appends a step; the tensors read since the last step are read by it. */
  emit(step: PlanStep): void {
    for (const tensor of this.#reads) this.#lastRead.set(tensor, this.#steps.length);
    this.#reads = [];
    this.#steps.push(step);
  }

  /** The finished plan for a function of these inputs: arena placed, views at their sources'. */
  finish(inputs: readonly string[]): Plan {
    const outputIds = this.#outputNames.map((name) =>
      this.#values.get(name)?.tensor ?? this.fail(`output "${name}" is never computed`)
    );
    return {
      version: 1,
      tensors: this.#tensors,
      inputs: inputs.map((_, i) => i),
      inputNames: [...inputs],
      outputs: outputIds,
      outputNames: this.#outputNames,
      steps: this.#steps,
      arenaBytes: this.#placeArena(),
    };
  }

  #tensor(type: TensorType, storage: PlanStorage | "arena", where: string): number {
    const id = this.#tensors.length;
    const dtype = PLAN_DTYPES[type.dtype] ??
      this.fail(`${where} has dtype ${type.dtype}, which the CPU backend does not run`);
    // Arena offsets are assigned after all steps are known.
    this.#tensors.push({
      dtype,
      shape: [...type.shape],
      storage: storage === "arena" ? { kind: "arena", offset: -1 } : storage,
    });
    if (storage === "arena") this.#arenaTensors.push(id);
    return id;
  }

  /** A tensor of another shape over the same bytes as tensor `source`. */
  #view(type: TensorType, source: number): number {
    const root = this.#viewRoots.get(source) ?? source;
    const id = this.#tensors.length;
    this.#tensors.push({ ...this.#tensors[root]!, shape: [...type.shape] });
    this.#viewRoots.set(id, root);
    return id;
  }

  /** The tensor of a value, dequantizing a quantized weight that an op reads whole. */
  #storage(name: string): number {
    const info = this.#values.get(name) ?? this.fail(`value "${name}" is undefined`);
    if (info.tensor === undefined) {
      if (info.quantized === undefined) this.fail(`value "${name}" has no storage`);
      info.tensor = this.#tensor(info.type, "arena", `value "${name}"`);
      // Not through emit: the reads gathered so far belong to the step that reads the result.
      this.#steps.push({ op: "dequantize", weight: info.quantized, out: info.tensor });
    }
    return info.tensor;
  }

  #constant(value: Value, name: string): ValueInfo {
    const constant = immediateValues(value);
    const type = { dtype: value.dtype, shape: value.shape };
    if (value.kind === "blob") {
      return {
        type,
        tensor: this.#tensor(
          type,
          { kind: "weight", offset: value.offsetBytes },
          `const "${name}"`,
        ),
      };
    }
    if (value.dtype === "string" || value.dtype === "bool") return { type, constant: constant! };
    const values = constant as readonly number[];
    return {
      type,
      constant: values,
      tensor: this.#tensor(type, { kind: "inline", values }, `const "${name}"`),
    };
  }

  #arguments(op: Operation): Map<string, OpArgument[]> {
    const args = new Map<string, OpArgument[]>();
    for (const [param, list] of op.inputs) {
      args.set(
        param,
        list.map((_, k) => {
          const name = this.arg(op, param, k)!;
          const info = this.#values.get(name) ??
            this.fail(`op "${op.name}" reads undefined "${name}"`);
          return info.constant === undefined
            ? { type: info.type }
            : { type: info.type, value: info.constant };
        }),
      );
    }
    return args;
  }

  /** Offsets for the arena tensors; views take their sources' storage. Returns the arena size. */
  #placeArena(): number {
    const writtenAt = new Map<number, number>();
    this.#steps.forEach((step, index) => {
      for (const id of stepOutputs(step)) if (!writtenAt.has(id)) writtenAt.set(id, index);
    });
    const layout = placeArena(this.#arenaTensors.map((id) => {
      const tensor = this.#tensors[id]!;
      const from = writtenAt.get(id) ?? 0;
      return {
        bytes: elementCount(tensor.shape) * PLAN_DTYPE_BYTES[tensor.dtype],
        from,
        to: Math.max(this.#lastRead.get(id) ?? from, from),
      };
    }));
    this.#arenaTensors.forEach((id, k) => {
      this.#tensors[id] = {
        ...this.#tensors[id]!,
        storage: { kind: "arena", offset: layout.offsets[k]! },
      };
    });
    for (const [view, root] of this.#viewRoots) {
      this.#tensors[view] = { ...this.#tensors[view]!, storage: this.#tensors[root]!.storage };
    }
    return layout.bytes;
  }
}
