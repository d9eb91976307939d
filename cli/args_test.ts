import assert from "node:assert/strict";
import { flagLines, type FlagTable, parseFlags, usage, UsageError } from "./args.ts";

const table = {
  output: { type: "string", short: "o", value: "PATH", help: "where to write", default: "a b" },
  max_len: { type: "string", value: "N", help: "longest run", default: "8" },
  seed: { type: "string", value: "N", help: "seed", defaultText: "random" },
  quiet: { type: "boolean", short: "q", help: "say less" },
  temperature: { type: "string", alias: "temp", value: "T", help: "heat" },
} as const satisfies FlagTable;

Deno.test("parseFlags applies the table's defaults and reads kebab-case spellings", () => {
  assert.deepEqual({ ...parseFlags([], table).values }, {
    output: "a b",
    max_len: "8",
    quiet: false,
  });
  const { values } = parseFlags(["--max-len=3", "-q", "--seed", "7"], table);
  assert.deepEqual({ ...values }, { output: "a b", max_len: "3", seed: "7", quiet: true });
});

Deno.test("parseFlags reads a flag's second long name as the flag itself", () => {
  assert.equal(parseFlags(["--temp", "0.5"], table).values.temperature, "0.5");
  assert.equal(parseFlags(["--temp=0"], table).values.temperature, "0");
  assert.equal(parseFlags(["--temperature", "1"], table).values.temperature, "1");
  assert.throws(() => parseFlags(["--tem", "1"], table), UsageError);
});

Deno.test("parseFlags leaves everything after -- to the positionals", () => {
  const { values, positionals } = parseFlags(
    ["-q", "--", "--help", "-o", "--max-len"],
    table,
    true,
  );
  assert.equal(values.quiet, true);
  assert.equal(values.output, "a b");
  assert.deepEqual(positionals, ["--help", "-o", "--max-len"]);
});

Deno.test("parseFlags reports unknown flags and stray positionals as usage errors", () => {
  assert.throws(() => parseFlags(["--nope"], table), UsageError);
  assert.throws(() => parseFlags(["text"], table), UsageError);
});

Deno.test("flagLines aligns every help in one column and wraps it under itself", () => {
  const long = {
    ...table,
    note: { type: "boolean", help: "word ".repeat(40).trim() },
  } as const satisfies FlagTable;
  const lines = flagLines(long).split("\n");
  const column = lines[0]!.indexOf("where to write");
  for (const line of lines) {
    assert.ok(line.length <= 100, line);
    assert.match(line.slice(column - 2, column), /^ {2}$/, line);
    assert.notEqual(line[column], " ", line);
  }
  assert.equal(lines[0], "  -o, --output PATH".padEnd(column) + 'where to write (default "a b")');
  assert.equal(lines[1], "      --max_len N".padEnd(column) + "longest run (default 8)");
  assert.equal(lines[2], "      --seed N".padEnd(column) + "seed (default random)");
  assert.equal(lines[4], "      --temperature, --temp T".padEnd(column) + "heat");
  assert.equal(lines.at(-1), "  -h, --help".padEnd(column) + "print this help");
});

Deno.test("usage puts the synopsis, the description, the flags and the notes in order", () => {
  const text = usage({
    command: "demo",
    synopsis: ["-o PATH", "--other"],
    description: "Does things.",
    flags: table,
    notes: "A note.",
  });
  assert.equal(
    text,
    `Usage: llamane demo -o PATH\n       llamane demo --other\n\nDoes things.\n\n${
      flagLines(table)
    }\n\nA note.\n\nKebab-case spellings work too: --max-len for --max_len.`,
  );
});
