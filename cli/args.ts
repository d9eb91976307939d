/**
 * Command-line parsing shared by every command: upstream snake_case flag names, with kebab-case
 * spellings accepted as aliases.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command-line mistake: the message says what was wrong; the CLI prints usage and exits 2. */
export class UsageError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Option definitions in `node:util` parseArgs form, keyed by the snake_case flag name. */
export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

/** Rewrites `--max-context-len` to `--max_context_len` so that both spellings reach one option. */
function snakeCaseFlag(arg: string): string {
  if (!arg.startsWith("--")) return arg;
  const eq = arg.indexOf("=");
  const name = eq < 0 ? arg : arg.slice(0, eq);
  return name.replaceAll("-", "_").replace(/^__/, "--") + (eq < 0 ? "" : arg.slice(eq));
}

/**
 * Parses `argv` against `options`, converting parse failures into {@link UsageError}.
 *
 * @returns the option values and the positional arguments
 */
export function parseCommandLine<T extends OptionSpec>(
  argv: readonly string[],
  options: T,
  allowPositionals = false,
) {
  const endOfFlags = argv.indexOf("--");
  const flags = endOfFlags < 0 ? argv : argv.slice(0, endOfFlags);
  const rest = endOfFlags < 0 ? [] : argv.slice(endOfFlags);
  try {
    return parseArgs({
      args: [...flags.map(snakeCaseFlag), ...rest],
      options,
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** Parses a flag value that must be a whole number in `[min, max]`. */
export function parseInteger(
  flag: string,
  value: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `Invalid --${flag}: expected a whole number in [${min}, ${max}], got "${value}"`,
    );
  }
  return n;
}

/** Parses a flag value that must be a finite number in `[min, max]`. */
export function parseNumber(flag: string, value: string, min = -Infinity, max = Infinity): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(
      `Invalid --${flag}: expected a number in [${min}, ${max}], got "${value}"`,
    );
  }
  return n;
}
