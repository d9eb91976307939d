/**
 * A bundle loaded on a backend: runs one forward call through every piece in order, passing the
 * hidden state along by name, and hands back the logits and the call's new cache entries.
 * Multifunction bundles run their `decode` functions for one-token calls and `prefill` otherwise.
 *
 * @module
 */

import {
  hidden,
  isLogits,
  kCache,
  kNew,
  LOGITS,
  logitsPart,
  shapeForCall,
  vCache,
  vNew,
} from "../bundle/io_names.ts";
import {
  type BundleManifest,
  type FunctionSpec,
  type IoSpec,
  readManifest,
} from "../bundle/manifest.ts";
import { readCheckedPackages } from "../bundle/check_programs.ts";
import { readNeed, requirePermissions } from "../permissions.ts";
import type { Backend, IoArray, LoadedFunction } from "./backend/backend.ts";
import type { CallInputs } from "./call_inputs.ts";
import type { FloatArray, KvCache } from "./kv_cache.ts";
import { elementCount } from "../shape.ts";

/**
 * What one forward call returns. The arrays are reused by the next call of the same length made
 * with the same {@link ForwardBuffers} (each session has its own); transfer one to keep it.
 */
export interface ForwardResult {
  /** `[1, L, V]`, or `[1, 1, V]` when the bundle or the call computes only the last row. */
  readonly logits: FloatArray;
  /** Per layer, `[1, Hkv, L, hd]`. */
  readonly newKeys: readonly FloatArray[];
  /** Per layer, the call's values, shaped as `newKeys`. */
  readonly newValues: readonly FloatArray[];
}

/**
 * Copies the logits parts among `outputs` (`logits_0`, `logits_1`, ..., each `[rows, V_i]`) side
 * by side into `joined`, `[rows, vocab]`, and returns it.
 */
function joinLogitsParts(
  joined: FloatArray,
  outputs: ReadonlyMap<string, IoArray>,
  vocab: number,
): FloatArray {
  const rows = joined.length / vocab;
  let column = 0;
  for (let i = 0; outputs.has(logitsPart(i)); i++) {
    const part = outputs.get(logitsPart(i)) as FloatArray;
    const width = part.length / rows;
    for (let row = 0; row < rows; row++) {
      joined.set(part.subarray(row * width, (row + 1) * width), row * vocab + column);
    }
    column += width;
  }
  return joined;
}

function allocate(io: IoSpec, shape: readonly number[]): IoArray {
  const count = elementCount(shape);
  return io.dtype === "fp16"
    ? new Float16Array(count)
    : io.dtype === "fp32"
    ? new Float32Array(count)
    : new Int32Array(count);
}

/**
 * The output arrays of one caller's forward calls, by call length and piece, reused from call to
 * call. Each session owns a set, so sessions running at once on one model never write each other's
 * results; a set with an array whose ArrayBuffer was transferred away is made again.
 */
export class ForwardBuffers {
  readonly #byLength = new Map<number, Map<string, IoArray>[]>();

  /** The arrays of calls of `callLength`, one map per piece, made by `make` when needed. */
  get(callLength: number, make: () => Map<string, IoArray>[]): Map<string, IoArray>[] {
    const known = this.#byLength.get(callLength);
    const transferred = known?.some((piece) =>
      [...piece.values()].some((array) => (array.buffer as ArrayBuffer).detached)
    );
    if (known !== undefined && !transferred) return known;
    const made = make();
    this.#byLength.set(callLength, made);
    return made;
  }
}

/** One loaded function of one piece. */
interface Stage {
  readonly spec: FunctionSpec;
  readonly fn: LoadedFunction;
}

/** The name of the one-token function of multifunction bundles. */
const DECODE = "decode";

/** Which rows of logits a call needs. */
export type LogitRows = "all" | "last";

/**
 * The index of the last piece if it turns each row of the final hidden state into that row's
 * logits and nothing else (the head of a graph-broken single-method bundle): norm and linear work
 * row by row, so the last row's logits need that row alone.
 */
function rowwiseHead(manifest: BundleManifest): number | undefined {
  const index = manifest.pieces.length - 1;
  const spec = manifest.pieces[index]!.functions[0]!;
  const rowwise = index > 0 && spec.inputs.length === 1 &&
    spec.inputs[0]!.name === hidden(manifest.model.nLayers) &&
    spec.outputs.every((io) => isLogits(io.name));
  return rowwise ? index : undefined;
}

/** A bundle ready to run. Dispose it to release the backend's resources. */
export class LoadedModel implements Disposable {
  /**
   * The bundle's manifest (its types are in the `./bundle` entry point).
   * @internal
   */
  readonly manifest: BundleManifest;
  /**
   * The engine running it.
   * @internal
   */
  readonly backend: Backend;
  /** Per piece, its functions by name. */
  readonly #pieces: readonly ReadonlyMap<string, Stage>[];
  /** Output arrays of the calls that bring none. */
  readonly #buffers = new ForwardBuffers();
  readonly #rowwiseHead: number | undefined;
  #disposed = false;

  private constructor(manifest: BundleManifest, backend: Backend, pieces: Map<string, Stage>[]) {
    this.manifest = manifest;
    this.backend = backend;
    this.#pieces = pieces;
    this.#rowwiseHead = rowwiseHead(manifest);
  }

  /**
   * Reads the bundle's manifest, checks it against the pieces' programs, and loads every function
   * of every piece on `backend`. Needs read permission for the bundle directory. Tools that bring their own backend use this; everyone
   * else calls `loadModel`.
   * @internal
   */
  static async load(bundle: string, backend: Backend): Promise<LoadedModel> {
    await requirePermissions([readNeed(bundle, "read the bundle")]);
    const manifest = await readManifest(bundle);
    readCheckedPackages(bundle, manifest);
    const pieces: Map<string, Stage>[] = [];
    try {
      for (const piece of manifest.pieces) {
        const functions = new Map<string, Stage>();
        pieces.push(functions);
        for (const spec of piece.functions) {
          functions.set(spec.name, { spec, fn: await backend.load(bundle, piece, spec) });
        }
      }
    } catch (error) {
      for (const stage of pieces.flatMap((p) => [...p.values()])) stage.fn[Symbol.dispose]();
      throw error;
    }
    return new LoadedModel(manifest, backend, pieces);
  }

  /** Tokens per call the bundle was exported with, L. */
  get inputLength(): number {
    return this.manifest.export.inputLen;
  }

  /** Whether the bundle has a one-token decode function (multifunction bundles). */
  get hasDecodeFunction(): boolean {
    return this.#pieces[0]!.has(DECODE);
  }

  /**
   * The call length that carries `tokens` real tokens: exactly that many on a backend with
   * flexible lengths, else 1 for a decode function and L for everything else (padded).
   */
  callLengthFor(tokens: number): number {
    if (this.backend.flexibleCallLength) return tokens;
    return tokens === 1 && this.hasDecodeFunction ? 1 : this.inputLength;
  }

  /** The function of a piece that runs calls of `callLength`. */
  #stage(functions: ReadonlyMap<string, Stage>, callLength: number): Stage {
    const stage = callLength === 1 && functions.has(DECODE)
      ? functions.get(DECODE)!
      : [...functions.values()].find((s) => s.spec.name !== DECODE)!;
    const exported = stage.spec.callLength;
    if (
      callLength !== exported &&
      !(this.backend.flexibleCallLength && callLength >= 1 && callLength < exported)
    ) {
      throw new RangeError(
        `Cannot run a call of ${callLength} tokens on the ${this.backend.name} backend: function ` +
          `"${stage.spec.name}" runs ${exported}`,
      );
    }
    return stage;
  }

  /**
   * Runs one call through all pieces.
   *
   * @param callLength L of this call, as {@link callLengthFor} gives it
   * @param rows `"last"` when only the last row's logits are wanted: a backend with flexible call
   *   lengths then runs a row-wise head on that row alone, and the logits are `[1, 1, V]`
   * @param buffers where the outputs go: a session's own, or the model's for everyone else
   * @throws {Deno.errors.BadResource} once the model is disposed, even mid-call: the piece running
   *   at that moment finishes, and the call stops before the next one
   * @internal
   */
  async forward(
    callLength: number,
    inputs: CallInputs,
    cache: KvCache,
    rows: LogitRows = "all",
    buffers: ForwardBuffers = this.#buffers,
  ): Promise<ForwardResult> {
    const values = new Map<string, IoArray>(inputs);
    for (let layer = 0; layer < this.manifest.model.nLayers; layer++) {
      values.set(kCache(layer), cache.keys[layer]!);
      values.set(vCache(layer), cache.values[layer]!);
    }
    for (const [index, functions] of this.#pieces.entries()) {
      if (this.#disposed) {
        throw new Deno.errors.BadResource("Cannot run the model: it has been disposed");
      }
      // Every row of the head's input is a row of its output: the last row alone gives the last
      // row's logits, bit for bit (the CPU backend computes a row the same way in any call).
      const lastRowOnly = rows === "last" && index === this.#rowwiseHead && callLength > 1 &&
        this.backend.flexibleCallLength;
      const length = lastRowOnly ? 1 : callLength;
      const { spec, fn } = this.#stage(functions, length);
      const stageInputs = new Map<string, IoArray>();
      for (const io of spec.inputs) {
        let value = values.get(io.name);
        if (lastRowOnly && value !== undefined) {
          const width = value.length / callLength;
          value = value.subarray((callLength - 1) * width);
        }
        const expected = shapeForCall(io.name, io.shape, spec.callLength, length).reduce(
          (a, b) => a * b,
          1,
        );
        if (value === undefined || value.length !== expected) {
          throw new RangeError(
            `Cannot run piece ${index}: input "${io.name}" needs ${expected} values, got ${
              value?.length ?? "none"
            }`,
          );
        }
        stageInputs.set(io.name, value);
      }
      const allocated = buffers.get(length, () => this.#allocateOutputs(length));
      const outputs = allocated[index]!;
      await fn.run(length, stageInputs, outputs);
      for (const [name, array] of outputs) values.set(name, array);
      // The last allocation beyond the pieces holds the logits joined from their parts.
      const joined = allocated[this.#pieces.length]?.get(LOGITS) as FloatArray | undefined;
      if (index === this.#pieces.length - 1 && joined !== undefined) {
        values.set(LOGITS, joinLogitsParts(joined, outputs, this.manifest.model.vocabSize));
      }
    }
    const layers = Array.from({ length: this.manifest.model.nLayers }, (_, i) => i);
    return {
      logits: values.get(LOGITS) as FloatArray,
      newKeys: layers.map((i) => values.get(kNew(i)) as FloatArray),
      newValues: layers.map((i) => values.get(vNew(i)) as FloatArray),
    };
  }

  #allocateOutputs(callLength: number): Map<string, IoArray>[] {
    const outputs = this.#pieces.map((functions) => {
      const { spec } = this.#stage(functions, callLength);
      return new Map(
        spec.outputs.map((io) => [
          io.name,
          allocate(io, shapeForCall(io.name, io.shape, spec.callLength, callLength)),
        ]),
      );
    });
    const head = this.#stage(this.#pieces.at(-1)!, callLength).spec;
    const first = head.outputs.find((io) => io.name === logitsPart(0));
    if (first !== undefined) {
      // Logits emitted in parts: one more array, [1, rows, V], receives them joined.
      const [, rows] = shapeForCall(first.name, first.shape, head.callLength, callLength);
      const shape = [1, rows!, this.manifest.model.vocabSize];
      outputs.push(new Map([[LOGITS, allocate({ ...first, name: LOGITS, shape }, shape)]]));
    }
    return outputs;
  }

  /**
   * Releases every loaded function. A call running meanwhile finishes its current piece, whose
   * native resources are freed only then, and fails before the next one.
   */
  [Symbol.dispose](): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const functions of this.#pieces) {
      for (const stage of functions.values()) stage.fn[Symbol.dispose]();
    }
  }
}
