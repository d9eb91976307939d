/**
 * Palettized weights, as docs/design.md describes them: every group of `groupRows` consecutive
 * output rows shares one palette of `2^bits` values, fitted by one-dimensional k-means, and each
 * weight is stored as the index of its nearest palette entry (`constexpr_lut_to_dense`).
 *
 * The fit is deterministic and linear in the group's size. In one dimension a clustering is a set
 * of cut points, and Lloyd's iteration needs only how many values lie below each cut and their
 * sum. So the values are first sorted into {@link BINS} equal-width bins (a counting sort, with
 * prefix counts and sums per bin), and an iteration then costs one scan of the bin each cut falls
 * in, not a pass over the values; the result is that of Lloyd's iterations on the values
 * themselves. The palette is rounded to its storage dtype before the values are assigned, so
 * every index names the nearest stored entry.
 *
 * @module
 */

/** Index widths the exporter writes: `lut4` and `lut6`. */
export type PaletteBits = 4 | 6;

/** A row-major matrix stored as palette indices, one palette per group of rows. */
export interface PalettizedMatrix {
  readonly bits: PaletteBits;
  readonly rows: number;
  readonly columns: number;
  /** Consecutive rows that share a palette. */
  readonly groupRows: number;
  /** `[rows, columns]` indices in `[0, 2^bits)`. */
  readonly indices: Uint8Array;
  /** `[rows / groupRows, 2^bits]` palettes, ascending, already rounded to the storage dtype. */
  readonly palettes: Float32Array;
}

/** Bins the values are sorted into: far finer than 64 centroids need. */
const BINS = 4096;

/** Lloyd iterations at most; they stop earlier once no centroid moves. */
const MAX_ITERATIONS = 1000;

/**
 * Palettizes a `[rows, columns]` matrix.
 *
 * @param groupRows rows per palette; must divide `rows`
 * @param roundValue rounds a palette entry to its storage dtype (`Math.f16round` for fp16 models)
 */
export function palettizeMatrix(
  weights: Float32Array,
  rows: number,
  columns: number,
  bits: PaletteBits,
  groupRows: number,
  roundValue: (x: number) => number,
): PalettizedMatrix {
  if (weights.length !== rows * columns) {
    throw new RangeError(
      `Cannot palettize: ${weights.length} values do not form a [${rows}, ${columns}] matrix`,
    );
  }
  if (groupRows <= 0 || rows % groupRows !== 0) {
    throw new RangeError(
      `Cannot palettize: ${groupRows} rows per palette do not divide the ${rows} rows`,
    );
  }
  const entries = 2 ** bits;
  const indices = new Uint8Array(weights.length);
  const palettes = new Float32Array((rows / groupRows) * entries);
  const groupSize = groupRows * columns;
  const bins = new Bins();
  for (let g = 0; g < rows / groupRows; g++) {
    const values = weights.subarray(g * groupSize, (g + 1) * groupSize);
    const palette = palettes.subarray(g * entries, (g + 1) * entries);
    bins.fill(values);
    const centroids = bins.kMeans(entries);
    for (let i = 0; i < entries; i++) palette[i] = roundValue(centroids[i]!);
    palette.sort();
    bins.assignNearest(values, palette, indices.subarray(g * groupSize, (g + 1) * groupSize));
  }
  return { bits, rows, columns, groupRows, indices, palettes };
}

/**
 * One group's values sorted into equal-width bins (a counting sort), with each bin's count and sum
 * as prefix sums: how many values lie at or below any point, and their sum, is then exact at the
 * cost of scanning the one bin the point falls in.
 */
class Bins {
  /** `counts[b]`: values in bins `[0, b)`; `BINS + 1` entries. */
  readonly #counts = new Float64Array(BINS + 1);
  /** `sums[b]`: sum of the values in bins `[0, b)`. */
  readonly #sums = new Float64Array(BINS + 1);
  /** The values, bin after bin (in no order within a bin). */
  #sorted = new Float32Array(0);
  /** Per bin, the palette index all its values take, or -1 when a midpoint crosses it. */
  readonly #binIndex = new Int8Array(BINS);
  #min = 0;
  #width = 0;

  fill(values: Float32Array): void {
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
      // NaN fails both comparisons; infinities pass them.
      if (!(v - v === 0)) {
        throw new RangeError(`Cannot palettize: the weights hold a non-finite value (${v})`);
      }
    }
    this.#min = min;
    this.#width = (max - min) / BINS;
    const counts = this.#counts.fill(0);
    const sums = this.#sums.fill(0);
    for (let i = 0; i < values.length; i++) {
      const bin = this.#bin(values[i]!);
      counts[bin + 1]!++;
      sums[bin + 1]! += values[i]!;
    }
    for (let b = 1; b <= BINS; b++) {
      counts[b]! += counts[b - 1]!;
      sums[b]! += sums[b - 1]!;
    }
    if (this.#sorted.length < values.length) this.#sorted = new Float32Array(values.length);
    const next = Int32Array.from(counts.subarray(0, BINS));
    for (let i = 0; i < values.length; i++) {
      this.#sorted[next[this.#bin(values[i]!)]!++] = values[i]!;
    }
  }

  /**
   * `k` centroids, ascending: Lloyd's iterations from the quantiles `(i + 1/2) / k` of the values
   * (interpolated between neighbours, as NumPy's `quantile` does), until no centroid moves.
   */
  kMeans(k: number): Float64Array {
    const total = this.#counts[BINS]!;
    let centroids = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      const position = ((i + 0.5) / k) * (total - 1);
      const below = Math.floor(position);
      const low = this.#valueAtRank(below);
      const high = below + 1 < total ? this.#valueAtRank(below + 1) : low;
      centroids[i] = low + (position - below) * (high - low);
    }
    const at = new Float64Array(k + 1);
    const sumAt = new Float64Array(k + 1);
    at[k] = total;
    sumAt[k] = this.#sums[BINS]!;
    for (let iteration = 0; iteration < MAX_ITERATIONS; iteration++) {
      for (let i = 1; i < k; i++) {
        [at[i], sumAt[i]] = this.#atOrBelow((centroids[i - 1]! + centroids[i]!) / 2);
      }
      const moved = new Float64Array(k);
      for (let i = 0; i < k; i++) {
        const n = at[i + 1]! - at[i]!;
        moved[i] = n > 0 ? (sumAt[i + 1]! - sumAt[i]!) / n : centroids[i]!;
      }
      moved.sort();
      if (moved.every((c, i) => c === centroids[i])) break;
      centroids = moved;
    }
    return centroids;
  }

  /**
   * `indices[i]` = the entry of the ascending `palette` nearest to `values[i]` (the values
   * {@link fill} counted); a value exactly halfway between two entries takes the lower one. A
   * bin that lies, with a margin for rounding, between two midpoints gives its values' index
   * at once; the few bins a midpoint crosses search the midpoints.
   */
  assignNearest(
    values: Float32Array,
    palette: Float32Array | Float64Array,
    indices: Uint8Array,
  ): void {
    const last = palette.length - 1;
    const midpoints = new Float64Array(last);
    for (let i = 0; i < last; i++) midpoints[i] = (palette[i]! + palette[i + 1]!) / 2;
    const below = (v: number): number => {
      let lo = 0;
      let hi = last;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (v > midpoints[mid]!) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    const min = this.#min;
    const width = this.#width;
    const binIndex = this.#binIndex;
    const margin = width / 64;
    for (let b = 0; b < BINS; b++) {
      const lower = below(min + b * width - margin);
      binIndex[b] = lower === below(min + (b + 1) * width + margin) ? lower : -1;
    }
    const scale = width > 0 ? 1 / width : 0;
    for (let j = 0; j < values.length; j++) {
      const v = values[j]!;
      const known = binIndex[Math.min(BINS - 1, Math.floor((v - min) * scale))]!;
      indices[j] = known >= 0 ? known : below(v);
    }
  }

  /** The bin of a value of the group. */
  #bin(v: number): number {
    return this.#width > 0 ? Math.min(BINS - 1, Math.floor((v - this.#min) / this.#width)) : 0;
  }

  /** How many values are at or below `point`, and their sum. */
  #atOrBelow(point: number): [number, number] {
    if (point < this.#min) return [0, 0];
    const b = this.#bin(point);
    let count = this.#counts[b]!;
    let sum = this.#sums[b]!;
    for (let i = this.#counts[b]!; i < this.#counts[b + 1]!; i++) {
      const v = this.#sorted[i]!;
      if (v <= point) {
        count++;
        sum += v;
      }
    }
    return [count, sum];
  }

  /** The value of rank `rank` (0 the smallest), sorting the one bin that holds it. */
  #valueAtRank(rank: number): number {
    let b = 0;
    while (this.#counts[b + 1]! <= rank) b++;
    const bin = this.#sorted.subarray(this.#counts[b]!, this.#counts[b + 1]!).sort();
    return bin[rank - this.#counts[b]!]!;
  }
}
