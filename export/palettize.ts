/**
 * Palettized weights, as docs/design.md describes them: every group of `groupRows` consecutive
 * output rows shares one palette of `2^bits` values, fitted by one-dimensional weighted k-means,
 * and each weight is stored as the index of its nearest palette entry (`constexpr_lut_to_dense`).
 *
 * Each value's squared error is weighted by its {@link importance}, `w^2` plus the group's mean
 * of `w^2`: a plain fit gives a row's few large weights, which matter most, to the entries of
 * their many small neighbours; the mean keeps the small values from being ignored in turn. Lloyd's
 * update is then each cluster's importance-weighted mean; the assignment stays the nearest entry.
 *
 * The fit is deterministic and linear in the group's size. In one dimension a clustering is a set
 * of cut points, and Lloyd's iteration needs only the values' total importance below each cut and
 * its first moment. So the values are first sorted into about as many equal-width bins as there
 * are values, at most {@link MAX_BINS} (a counting sort, with prefix sums per bin), and an
 * iteration then costs one scan of the bin each cut falls in, not a pass over the values; the
 * result is that of Lloyd's iterations on the values themselves, whatever the bin count. The
 * palette is rounded to its storage dtype before the values are assigned, so every index names
 * the nearest stored entry.
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

/** Bins the values are sorted into at most: far finer than 64 centroids need. */
const MAX_BINS = 4096;

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
 * How much a value's squared error counts in its group's fit: its square plus the group's mean
 * square (`meanSquare`), so that large weights keep entries of their own and small ones still count.
 */
function importance(value: number, meanSquare: number): number {
  return value * value + meanSquare;
}

/**
 * One group's values sorted into equal-width bins (a counting sort), with each bin's count, total
 * importance and importance-weighted sum as prefix sums: those of the values at or below any point
 * are then exact at the cost of scanning the one bin the point falls in.
 */
class Bins {
  /** `counts[b]`: values in bins `[0, b)`; `bins + 1` entries. */
  readonly #counts = new Float64Array(MAX_BINS + 1);
  /** `weights[b]`: the importance of the values in bins `[0, b)`. */
  readonly #weights = new Float64Array(MAX_BINS + 1);
  /** `moments[b]`: the sum of importance times value over bins `[0, b)`. */
  readonly #moments = new Float64Array(MAX_BINS + 1);
  /** The values, bin after bin (in no order within a bin). */
  #sorted = new Float32Array(0);
  /** Per bin, the palette index all its values take, or -1 when a midpoint crosses it. */
  readonly #binIndex = new Int8Array(MAX_BINS);
  /** Bins in use: about one per value, so that small groups are cheap. */
  #bins = 0;
  /** The group's mean of `w^2`, part of every value's {@link importance}. */
  #meanSquare = 0;
  #min = 0;
  #width = 0;

  fill(values: Float32Array): void {
    let min = Infinity;
    let max = -Infinity;
    let squares = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
      // NaN fails both comparisons; infinities pass them.
      if (!(v - v === 0)) {
        throw new RangeError(`Cannot palettize: the weights hold a non-finite value (${v})`);
      }
      squares += v * v;
    }
    const bins = Math.min(MAX_BINS, values.length);
    this.#bins = bins;
    this.#meanSquare = squares / values.length;
    this.#min = min;
    this.#width = (max - min) / bins;
    const counts = this.#counts.fill(0, 0, bins + 1);
    const weights = this.#weights.fill(0, 0, bins + 1);
    const moments = this.#moments.fill(0, 0, bins + 1);
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const bin = this.#bin(v);
      const weight = importance(v, this.#meanSquare);
      counts[bin + 1]!++;
      weights[bin + 1]! += weight;
      moments[bin + 1]! += weight * v;
    }
    for (let b = 1; b <= bins; b++) {
      counts[b]! += counts[b - 1]!;
      weights[b]! += weights[b - 1]!;
      moments[b]! += moments[b - 1]!;
    }
    if (this.#sorted.length < values.length) this.#sorted = new Float32Array(values.length);
    const next = Int32Array.from(counts.subarray(0, bins));
    for (let i = 0; i < values.length; i++) {
      this.#sorted[next[this.#bin(values[i]!)]!++] = values[i]!;
    }
  }

  /**
   * `k` centroids, ascending: weighted Lloyd's iterations until no centroid moves, from the
   * importance quantiles: the `i`-th starts at the smallest value whose cumulative importance (its
   * own included) reaches `(i + 1/2) / k` of the group's. Quantiles by count would start most
   * entries among the many small values, where Lloyd's iterations leave them.
   */
  kMeans(k: number): Float64Array {
    const bins = this.#bins;
    // All values zero: so is the fit, and no value has importance to weight it.
    if (this.#meanSquare === 0) return new Float64Array(k);
    let centroids = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      centroids[i] = this.#valueAtImportance(((i + 0.5) / k) * this.#weights[bins]!);
    }
    let moved = new Float64Array(k);
    const cuts = new Below(k + 1);
    cuts.counts[k] = this.#counts[bins]!;
    cuts.weights[k] = this.#weights[bins]!;
    cuts.moments[k] = this.#moments[bins]!;
    for (let iteration = 0; iteration < MAX_ITERATIONS; iteration++) {
      for (let i = 1; i < k; i++) {
        this.#atOrBelow((centroids[i - 1]! + centroids[i]!) / 2, cuts, i);
      }
      const { counts, weights, moments } = cuts;
      for (let i = 0; i < k; i++) {
        // Emptiness by count: the difference of two rounded sums of importance need not be 0.
        moved[i] = counts[i + 1]! > counts[i]!
          ? (moments[i + 1]! - moments[i]!) / (weights[i + 1]! - weights[i]!)
          : centroids[i]!;
      }
      moved.sort();
      if (moved.every((c, i) => c === centroids[i])) break;
      [centroids, moved] = [moved, centroids];
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
    const bins = this.#bins;
    // The bins' edges ascend, so the midpoints below each are counted by walking, not searching.
    let lower = 0;
    let upper = 0;
    for (let b = 0; b < bins; b++) {
      const low = min + b * width - margin;
      const high = min + (b + 1) * width + margin;
      while (lower < last && low > midpoints[lower]!) lower++;
      while (upper < last && high > midpoints[upper]!) upper++;
      binIndex[b] = lower === upper ? lower : -1;
    }
    const scale = width > 0 ? 1 / width : 0;
    for (let j = 0; j < values.length; j++) {
      const v = values[j]!;
      const known = binIndex[Math.min(bins - 1, Math.floor((v - min) * scale))]!;
      indices[j] = known >= 0 ? known : below(v);
    }
  }

  /** The bin of a value of the group. */
  #bin(v: number): number {
    return this.#width > 0
      ? Math.min(this.#bins - 1, Math.floor((v - this.#min) / this.#width))
      : 0;
  }

  /**
   * Writes how many values are at or below `point`, their total importance and its first moment
   * to entry `at` of `below` (into arrays, as this runs for every cut of every iteration).
   */
  #atOrBelow(point: number, below: Below, at: number): void {
    let count = 0;
    let weight = 0;
    let moment = 0;
    if (point >= this.#min) {
      const b = this.#bin(point);
      count = this.#counts[b]!;
      weight = this.#weights[b]!;
      moment = this.#moments[b]!;
      for (let i = this.#counts[b]!; i < this.#counts[b + 1]!; i++) {
        const v = this.#sorted[i]!;
        if (v <= point) {
          const w = importance(v, this.#meanSquare);
          count++;
          weight += w;
          moment += w * v;
        }
      }
    }
    below.counts[at] = count;
    below.weights[at] = weight;
    below.moments[at] = moment;
  }

  /** The smallest value at which the cumulative importance reaches `target`. */
  #valueAtImportance(target: number): number {
    // The last bin whose values start below the target, by bisection of the prefix importances.
    let b = 0;
    let end = this.#bins;
    while (end - b > 1) {
      const mid = (b + end) >>> 1;
      if (this.#weights[mid]! < target) b = mid;
      else end = mid;
    }
    const bin = this.#sorted.subarray(this.#counts[b]!, this.#counts[b + 1]!).sort();
    let reached = this.#weights[b]!;
    for (const v of bin) {
      reached += importance(v, this.#meanSquare);
      if (reached >= target) return v;
    }
    return bin[bin.length - 1]!; // reached only by rounding of the sums
  }
}

/** Per cut: the values at or below it, their total importance and its first moment. */
class Below {
  readonly counts: Float64Array;
  readonly weights: Float64Array;
  readonly moments: Float64Array;

  constructor(cuts: number) {
    this.counts = new Float64Array(cuts);
    this.weights = new Float64Array(cuts);
    this.moments = new Float64Array(cuts);
  }
}
