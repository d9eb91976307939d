/**
 * What is reported about the Neural Engine's limits on one Core ML program, in one place: the
 * exporter sizes its layer chunks from these and `llamane lint` checks bundles against them.
 * None was measured by this project; docs/coreml.md lists each with its source, so that they can
 * be corrected once measured on hardware.
 *
 * @module
 */

/** One limit, with where the number comes from. */
export interface AneLimit {
  /** The value; what it counts is in the name of its entry. */
  readonly value: number;
  /** What is reported, briefly. */
  readonly source: string;
}

/** The limits. */
export const ANE_LIMITS = {
  /** Weight bytes one program compiles with. */
  programWeightBytes: {
    value: 1.5e9,
    source: "about 1.5 GB of weights compiles, 3.4 GB fails (ANE-focused converters' reports)",
  },
  /** Weight bytes per chunk the exporter aims for: a margin under the limit above. */
  chunkWeightBytes: {
    value: 1e9,
    source: "llamane's margin under the 1.5 GB reported to compile",
  },
  /** Transformer layers known to run in one program. */
  programLayers: {
    value: 24,
    source: "programs of 22 and 24 layers ran; 32 layers failed at execution whatever the width",
  },
  /** Transformer layers from which programs are reported to fail. */
  failingProgramLayers: {
    value: 31,
    source: "failures reported from about 31-32 layers (SmolLM2-360M, 32 layers)",
  },
  /** Largest size of any tensor axis. */
  tensorAxis: {
    value: 65536,
    source: "no axis may exceed 65,536: 128k-152k vocabularies are emitted as logits in parts " +
      "(ANE-focused converters split their heads so)",
  },
  /** Highest tensor rank that runs well. */
  tensorRank: {
    value: 4,
    source: "rank-5 tensors and reshapes through rank 5 run poorly or off the Neural Engine",
  },
} as const satisfies Record<string, AneLimit>;
