/**
 * The PyTorch oracle fixtures under testdata/oracle (made by scripts/oracle/make_fixtures.py):
 * checkpoints with reference logits computed by an independent PyTorch forward.
 *
 * @module
 */

/** One reference sequence: its tokens and the logits PyTorch computed for every position. */
export interface OracleSequence {
  readonly tokens: readonly number[];
  /** Row-major `[T, V]`. */
  readonly logits: Float32Array;
  readonly vocab: number;
}

/** One fixture. */
export interface OracleFixture {
  readonly name: string;
  readonly checkpoint: string;
  readonly params: string;
  readonly ropeScaleFactor: number | undefined;
  readonly notes: string;
  readonly sequences: readonly OracleSequence[];
}

const ROOT = new URL("../testdata/oracle/", import.meta.url);

interface ReferenceJson {
  checkpoint: string;
  params: string;
  rope_scale_factor?: number;
  notes?: string;
  sequences: { tokens: number[]; logits: string; shape: [number, number] }[];
}

/** Every fixture, in name order. */
export async function oracleFixtures(): Promise<OracleFixture[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(ROOT)) if (entry.isDirectory) names.push(entry.name);
  names.sort();
  return await Promise.all(names.map(async (name) => {
    const dir = new URL(`${name}/`, ROOT);
    const reference: ReferenceJson = JSON.parse(
      await Deno.readTextFile(new URL("reference.json", dir)),
    );
    const sequences = await Promise.all(reference.sequences.map(async (s) => {
      const bytes = await Deno.readFile(new URL(s.logits, dir));
      const logits = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      if (logits.length !== s.shape[0] * s.shape[1] || s.shape[0] !== s.tokens.length) {
        throw new RangeError(
          `Fixture "${name}": ${s.logits} does not hold [${s.shape}] logits for ${s.tokens.length} tokens`,
        );
      }
      return { tokens: s.tokens, logits, vocab: s.shape[1] };
    }));
    return {
      name,
      checkpoint: new URL(reference.checkpoint, dir).pathname,
      params: new URL(reference.params, dir).pathname,
      ropeScaleFactor: reference.rope_scale_factor,
      notes: reference.notes ?? "",
      sequences,
    };
  }));
}

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new RangeError(`Cannot compare arrays of ${a.length} and ${b.length} values`);
  }
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}
