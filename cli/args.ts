/**
 * Flag tables: each command declares its flags once, with their help and defaults, and both the
 * parser and the usage text are derived from that table, so that the two cannot disagree.
 *
 * Flags are named in upstream's snake_case; kebab-case spellings are accepted as aliases, and a
 * flag may have a second long name (llama.cpp's `--temp` for `--temperature`).
 *
 * @module
 */

import { parseArgs } from "node:util";

/** A command-line mistake: the message says what was wrong; the CLI prints usage and exits 2. */
export class UsageError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A flag that takes a value. */
export interface StringFlag {
  readonly type: "string";
  /** One-letter alias, e.g. `o` for `-o`. */
  readonly short?: string;
  /** A second long name, e.g. `temp` for `--temp` (llama.cpp's spelling of `--temperature`). */
  readonly alias?: string;
  /** How the value is shown in usage, e.g. `PATH`, `N` or `fp16|fp32`. */
  readonly value: string;
  /** What the flag does, shown in usage. */
  readonly help: string;
  /** The value when the flag is absent; shown in usage as `(default ...)`. */
  readonly default?: string;
  /** The default in words, when it is not one fixed value (e.g. `the bundle's`). */
  readonly defaultText?: string;
}

/** A switch: present or absent. */
export interface BooleanFlag {
  readonly type: "boolean";
  /** One-letter alias, e.g. `q` for `-q`. */
  readonly short?: string;
  /** A second long name. */
  readonly alias?: string;
  /** What the switch does, shown in usage. */
  readonly help: string;
}

/** One flag of a command. */
export type Flag = StringFlag | BooleanFlag;

/** A command's flags, keyed by their snake_case name. */
export type FlagTable = Readonly<Record<string, Flag>>;

/** The parsed value of each flag: a string (or undefined without a default), or a boolean. */
export type FlagValues<T extends FlagTable> = {
  -readonly [K in keyof T]: T[K] extends BooleanFlag ? boolean
    : T[K] extends { readonly default: string } ? string
    : string | undefined;
};

/** The parsed flags and the arguments that are not flags. */
export interface ParsedCommandLine<T extends FlagTable> {
  readonly values: FlagValues<T>;
  readonly positionals: string[];
}

/** The width usage text is wrapped to. */
const USAGE_WIDTH = 100;

/**
 * Rewrites `--max-context-len` to `--max_context_len`, and a flag's alias to its name, so that
 * every spelling reaches one flag.
 */
function canonicalFlag(arg: string, names: ReadonlyMap<string, string>): string {
  if (!arg.startsWith("--")) return arg;
  const eq = arg.indexOf("=");
  const name = (eq < 0 ? arg : arg.slice(0, eq)).slice(2).replaceAll("-", "_");
  return `--${names.get(name) ?? name}${eq < 0 ? "" : arg.slice(eq)}`;
}

/** The arguments before `--`: only these can be flags. */
export function flagArguments(argv: readonly string[]): readonly string[] {
  const end = argv.indexOf("--");
  return end < 0 ? argv : argv.slice(0, end);
}

/**
 * Parses `argv` against `table`. Arguments after `--` are positionals even when they start with a
 * dash.
 *
 * @throws {UsageError} on an unknown flag, a missing value, or a positional where none is taken
 */
export function parseFlags<T extends FlagTable>(
  argv: readonly string[],
  table: T,
  allowPositionals = false,
): ParsedCommandLine<T> {
  const flags = flagArguments(argv);
  const aliases = new Map(
    Object.entries(table).flatMap(([name, flag]) =>
      flag.alias === undefined ? [] : [[flag.alias, name] as const]
    ),
  );
  const options = Object.fromEntries(
    Object.entries(table).map(([name, flag]) => [name, {
      type: flag.type,
      ...(flag.short === undefined ? {} : { short: flag.short }),
      ...(flag.type === "boolean"
        ? { default: false }
        : flag.default === undefined
        ? {}
        : { default: flag.default }),
    }]),
  );
  try {
    const { values, positionals } = parseArgs({
      args: [...flags.map((arg) => canonicalFlag(arg, aliases)), ...argv.slice(flags.length)],
      options,
      allowPositionals,
      strict: true,
    });
    return { values: values as FlagValues<T>, positionals };
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** `[min, max]` in words for an error, leaving out an end at `unbounded` (or its negative). */
function rangeText(min: number, max: number, unbounded: number): string {
  if (max >= unbounded) return min <= -unbounded ? "" : ` >= ${min}`;
  return min <= -unbounded ? ` <= ${max}` : ` in [${min}, ${max}]`;
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
      `Invalid --${flag}: expected a whole number${
        rangeText(min, max, Number.MAX_SAFE_INTEGER)
      }, got "${value}"`,
    );
  }
  return n;
}

/** Parses a flag value that must be a finite number in `[min, max]`. */
export function parseNumber(flag: string, value: string, min = -Infinity, max = Infinity): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(
      `Invalid --${flag}: expected a number${rangeText(min, max, Infinity)}, got "${value}"`,
    );
  }
  return n;
}

/** Checks that a flag value is one of `choices`. */
export function parseChoice<C extends string>(
  flag: string,
  value: string,
  choices: readonly C[],
): C {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(
      `Invalid --${flag}: expected ${choices.join(", ")}, got "${value}"`,
    );
  }
  return value as C;
}

/** Breaks `text` into lines of at most `width` characters, at spaces. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  return [...lines, line];
}

/** `text` wrapped to the usage width. */
function paragraph(text: string): string {
  return wrap(text, USAGE_WIDTH).join("\n");
}

/** The help of a flag followed by its default, as usage shows it. */
function describe(flag: Flag): string {
  if (flag.type === "boolean") return flag.help;
  if (flag.defaultText !== undefined) return `${flag.help} (default ${flag.defaultText})`;
  if (flag.default === undefined) return flag.help;
  const shown = /^[^\s"]+$/.test(flag.default) ? flag.default : JSON.stringify(flag.default);
  return `${flag.help} (default ${shown})`;
}

/**
 * The flag lines of a usage text: `-o, --output PATH` and its help in aligned columns, help
 * wrapped under itself. `-h, --help` ends the list.
 */
export function flagLines(table: FlagTable): string {
  const rows: [string, string][] = Object.entries(table).map(([name, flag]) => [
    `${flag.short === undefined ? "    " : `-${flag.short}, `}--${name}${
      flag.alias === undefined ? "" : `, --${flag.alias}`
    }${flag.type === "string" ? ` ${flag.value}` : ""}`,
    describe(flag),
  ]);
  rows.push(["-h, --help", "print this help"]);
  const column = Math.max(...rows.map(([left]) => left.length)) + 4;
  return rows.map(([left, help]) =>
    wrap(help, USAGE_WIDTH - column)
      .map((line, i) => (i === 0 ? `  ${left}`.padEnd(column) : " ".repeat(column)) + line)
      .join("\n")
  ).join("\n");
}

/** What a command's usage text is made of. */
export interface UsageSpec {
  /** The command's name after `llamane`. */
  readonly command: string;
  /** Each way to call it, after `llamane <command>`, e.g. `-m BUNDLE [flags]`. */
  readonly synopsis: readonly string[];
  /** What it does, one paragraph, wrapped when printed. */
  readonly description: string;
  /** Its flags. */
  readonly flags: FlagTable;
  /** A paragraph printed after the flags, wrapped when printed. */
  readonly notes?: string;
}

/** The usage text of a command, generated from its flag table. */
export function usage(spec: UsageSpec): string {
  const calls = spec.synopsis.map((line, i) =>
    `${i === 0 ? "Usage:" : "      "} llamane ${spec.command}${line === "" ? "" : ` ${line}`}`
  );
  const parts = [calls.join("\n"), paragraph(spec.description), flagLines(spec.flags)];
  if (spec.notes !== undefined) parts.push(paragraph(spec.notes));
  const snake = Object.keys(spec.flags).find((name) => name.includes("_"));
  if (snake !== undefined) {
    parts.push(`Kebab-case spellings work too: --${snake.replaceAll("_", "-")} for --${snake}.`);
  }
  return parts.join("\n\n");
}
