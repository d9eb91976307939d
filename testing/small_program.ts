/**
 * Small MIL functions written by the exporter's graph code, for unit tests of `export/graph/` and
 * of the CPU planner: a few named inputs, a body that emits ops through a {@link GraphEmitter},
 * and checkpoint tensors held in memory for the emitters that read weights. Large constants go to
 * a weight.bin in a temporary directory, so the function can also be run on the CPU backend
 * ({@link runOnCpu}).
 *
 * @module
 */

import { ProgramBuilder, type Var } from "../coreml/builder.ts";
import { BlobStorageWriter } from "../coreml/blob_storage.ts";
import type { FloatDType } from "../coreml/dtype.ts";
import type { MilFunction } from "../coreml/mil.ts";
import type { TensorType } from "../coreml/tensor.ts";
import type { RowRange, TensorSource } from "../checkpoint/tensor_source.ts";
import type { ModelConfig } from "../llama/config.ts";
import { expectedTensors } from "../llama/weights.ts";
import { elementCount } from "../shape.ts";
import { type ExportOptions, resolveExportOptions } from "../export/options.ts";
import type { ExportContext } from "../export/graph/context.ts";
import { GraphEmitter } from "../export/graph/emitter.ts";
import { QuantizePool } from "../export/quantize_pool.ts";
import { WeightReader } from "../export/graph/weight_reader.ts";
import { NativeWeights, openLibrary } from "../ffi/cpu.ts";
import { planFunction } from "../runtime/backend/cpu/plan.ts";

/** A checkpoint tensor held in memory, row-major. */
export interface MemoryTensor {
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

/** What {@link emitProgram} builds a function from. */
export interface ProgramSpec {
  /** The function's inputs, in order. */
  readonly inputs: Readonly<Record<string, TensorType>>;
  /** Emits the ops and returns the values to make outputs (emitters may add their own). */
  readonly body: (
    e: GraphEmitter,
    ctx: ExportContext,
    inputs: Readonly<Record<string, Var>>,
  ) => readonly Var[] | Promise<readonly Var[]>;
  /** Checkpoint tensors the emitters may read, by name. */
  readonly tensors?: Readonly<Record<string, MemoryTensor>>;
  /** The model config the emitters see. @default {@link SMALL_CONFIG} */
  readonly config?: Partial<ModelConfig>;
  /** Export options besides the paths. @default fp32, no quantization */
  readonly options?: Omit<Partial<ExportOptions>, "checkpoint" | "params" | "output">;
}

/** A function of one program, its outputs in order, and the weight.bin its constants live in. */
export interface SmallProgram {
  readonly fn: MilFunction;
  readonly outputs: readonly string[];
  readonly weights: string;
  readonly dtype: FloatDType;
}

/** A model shape small enough to check by hand: 2 KV heads of 4 query heads of width 8. */
export const SMALL_CONFIG: ModelConfig = {
  trainedContext: undefined,
  dim: 32,
  nLayers: 1,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 8,
  hiddenDim: 48,
  vocabSize: 16,
  normEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: undefined,
  tiedOutput: false,
};

/** `tensors` as a checkpoint of fp32 safetensors. */
function memorySource(tensors: Readonly<Record<string, MemoryTensor>>): TensorSource {
  const info = (name: string) => {
    const t = tensors[name];
    return t === undefined ? undefined : { name, dtype: "F32" as const, shape: t.shape };
  };
  const rowsOf = (name: string, rows?: RowRange) => {
    const t = tensors[name]!;
    const columns = t.shape.length === 2 ? t.shape[1]! : 1;
    const start = rows?.start ?? 0;
    const end = rows?.end ?? t.shape[0]!;
    return {
      shape: [end - start, ...t.shape.slice(1)],
      values: t.values.slice(start * columns, end * columns),
    };
  };
  return {
    path: "memory",
    format: "safetensors",
    list: () => Object.keys(tensors).map((name) => info(name)!),
    info,
    readFloat32: (name, rows) => Promise.resolve(rowsOf(name, rows).values),
    readStored: (name, rows) => {
      const { shape, values } = rowsOf(name, rows);
      return Promise.resolve({ dtype: "F32", shape, bytes: new Uint8Array(values.buffer) });
    },
    close: () => {},
    [Symbol.dispose]: () => {},
  };
}

/** Builds the function `main` of `spec` into a program of its own. */
export async function emitProgram(spec: ProgramSpec): Promise<SmallProgram> {
  const options = resolveExportOptions({
    checkpoint: "memory",
    params: "memory",
    dtype: "fp32",
    linearQuantize: "none",
    embeddingQuantize: "none",
    ...spec.options,
  });
  const dir = await Deno.makeTempDir({ prefix: "llamane-small-program-" });
  const weights = `${dir}/weight.bin`;
  using sink = BlobStorageWriter.create(weights);
  const program = new ProgramBuilder({ weights: sink });
  const e = new GraphEmitter(program.function("main"), options.dtype);
  const ctx: ExportContext = {
    config: { ...SMALL_CONFIG, ...spec.config },
    options,
    weights: new WeightReader(memorySource(spec.tensors ?? {})),
    pool: await QuantizePool.start(1),
    weightWritten: () => {},
    storageChosen: () => {},
    errorMeasured: () => {},
  };
  const inputs = Object.fromEntries(
    Object.entries(spec.inputs).map(([name, type]) => [name, e.fn.input(name, type)]),
  );
  const outputs = await spec.body(e, ctx, inputs);
  if (outputs.length > 0) e.fn.output(...outputs);
  const model = program.build();
  return {
    fn: model.program.functions.get("main")!,
    outputs: model.description.outputs.map((o) => o.name),
    weights,
    dtype: options.dtype,
  };
}

/** Deterministic values in [-1, 1) (a sine of the index), `count` of them. */
export function waves(count: number, phase = 0): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(1.7 * i + phase));
}

/** Every tensor of a checkpoint of `config` (default {@link SMALL_CONFIG}), filled with waves. */
export function smallCheckpoint(
  config: ModelConfig = SMALL_CONFIG,
): Record<string, MemoryTensor> {
  return Object.fromEntries(
    [...expectedTensors(config)].map(([name, shape], k) => {
      return [name, { shape, values: waves(elementCount(shape), k) }];
    }),
  );
}

/** A tensor's values by name, as a program takes and returns them. */
export type Values = Readonly<Record<string, Float32Array | Int32Array>>;

let library: ReturnType<typeof openLibrary> | undefined;

/**
 * Runs `program` on the CPU backend for one call of its exported length: planned as the backend
 * plans it, or with every value made an output so that no op is fused and each runs as its own
 * generic step. Returns the function's outputs (every value, `unfused`).
 */
export async function runOnCpu(
  program: SmallProgram,
  callLength: number,
  inputs: Values,
  options: { readonly unfused?: boolean } = {},
): Promise<Record<string, Float32Array | Int32Array>> {
  library ??= openLibrary();
  const computed = program.fn.block.operations.filter((op) => !op.type.startsWith("const"));
  const outputs = options.unfused
    ? computed.flatMap((op) => op.outputs.map((o) => o.name))
    : program.outputs;
  const plan = planFunction(program.fn, callLength, callLength, outputs);
  using weights = NativeWeights.open(await library, program.weights);
  using native = weights.plan(JSON.stringify(plan));
  const buffers = plan.outputs.map((id) => {
    const { dtype, shape } = plan.tensors[id]!;
    if (dtype !== "f32" && dtype !== "i32") throw new TypeError(`Cannot return ${dtype} values`);
    return dtype === "f32"
      ? new Float32Array(elementCount(shape))
      : new Int32Array(elementCount(shape));
  });
  await native.run(program.fn.inputs.map((input) => inputs[input.name]!), buffers);
  return Object.fromEntries(outputs.map((name, k) => [name, buffers[k]!]));
}
