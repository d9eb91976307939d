/**
 * Where a resolved config came from: the kind of checkpoint, and for each field the key (or rule)
 * that gave its value, so that `info` can show how a config was read.
 *
 * @module
 */

import type { ModelConfig } from "./config.ts";

/** The checkpoint layouts a model can be read from. */
export type CheckpointLayout = "meta" | "hugging-face" | "gguf";

/** For each config field, where its value came from, e.g. `config.json "hidden_size"`. */
export type Provenance = Readonly<Record<keyof ModelConfig, string>>;

/** A config with its provenance. */
export interface ResolvedConfig {
  /** The config. */
  readonly config: ModelConfig;
  /** Where each field came from. */
  readonly provenance: Provenance;
}

/** An architecture that is not a Llama, or a Llama variant the exporter cannot build. */
export class NotLlamaError extends TypeError {
  /** The file that describes the model. */
  readonly path: string;
  /** The architecture named by the file. */
  readonly architecture: string;

  /** Builds `Cannot use "<path>": <architecture> is not a Llama: <differences>`. */
  constructor(path: string, architecture: string, differences: readonly string[]) {
    super(
      `Cannot use "${path}": ${architecture} is not a Llama the exporter can build: ` +
        differences.join("; "),
    );
    this.name = "NotLlamaError";
    this.path = path;
    this.architecture = architecture;
  }
}
