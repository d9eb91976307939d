/**
 * The shape of one `llamane <command>`.
 *
 * @module
 */

/** A CLI command: its help text and its entry point. */
export interface Command {
  /** One line for `llamane --help`. */
  readonly summary: string;
  /** Full usage text printed by `llamane <command> --help` and after a usage error. */
  readonly usage: string;
  /** Runs the command with the arguments that follow its name. Throws on failure. */
  main(argv: readonly string[]): Promise<void>;
}
