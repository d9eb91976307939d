/**
 * The shape of one benchmark. Benchmarks are not tests: they measure and record, never assert.
 *
 * @module
 */

/** Named measurements: a number (with its unit in the name, e.g. `peak_rss_mb`) or a note. */
export type Figures = Record<string, number | string>;

/** One benchmark: a name and a function that measures and returns its figures. */
export interface Bench {
  /** Short identifier, e.g. `checkpoint_load`. */
  readonly name: string;
  /** What it measures, one line. */
  readonly description: string;
  /** Runs the measurement. May be slow; must leave nothing behind but its cached inputs. */
  run(): Promise<Figures>;
}
