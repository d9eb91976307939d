import assert from "node:assert/strict";
import fc from "fast-check";
import { CheckpointFormatError, ForbiddenPickleError } from "./errors.ts";
import {
  MAX_MARK_DEPTH,
  MAX_MEMO,
  MAX_STACK,
  PickleGlobal,
  PickleTuple,
  type PickleValue,
  unpickle,
} from "./pickle.ts";
import { RandomAccessFile } from "./random_access_file.ts";
import { ZipArchive } from "./zip.ts";
import { fixture } from "./_testing.ts";

const source = { path: "test.pth", member: "test/data.pkl", fileOffset: 100 };

/** The tagged JSON form the fixture generator gives Python values (see make_pickles in make.py). */
function tagged(value: PickleValue): unknown {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    return Number.isFinite(value) ? value : { $float: value > 0 ? "inf" : "-inf" };
  }
  if (typeof value === "bigint") return { $int: value.toString() };
  if (value instanceof Uint8Array) {
    return { $bytes: [...value].map((b) => b.toString(16).padStart(2, "0")).join("") };
  }
  if (value instanceof PickleTuple) return { $tuple: value.items.map(tagged) };
  if (Array.isArray(value)) return value.map(tagged);
  if (value instanceof Map) return { $dict: [...value].map(([k, v]) => [tagged(k), tagged(v)]) };
  throw new Error(`unexpected ${String(value)}`);
}

Deno.test("unpickle() reads what Python's pickler writes with protocols 2 to 5", async () => {
  // crafted_p4 holds the opcodes Python writes only for huge values or old protocols.
  for (const name of ["values_p2", "values_p3", "values_p4", "values_p5", "crafted_p4"]) {
    const bytes = await Deno.readFile(fixture(`${name}.pkl`));
    const expected = JSON.parse(await Deno.readTextFile(fixture(`${name}.json`)));
    assert.deepStrictEqual(tagged(unpickle(bytes, source)), expected, name);
  }
});

Deno.test("unpickle() keeps memoized values shared", async () => {
  const value = unpickle(await Deno.readFile(fixture("values_p2.pkl")), source);
  assert.ok(value instanceof Map);
  const shared = value.get("shared");
  assert.ok(Array.isArray(shared));
  assert.equal(shared[0], shared[1]);
});

Deno.test("unpickle() rebuilds tuples that contain themselves (POP and POP_MARK)", async () => {
  const value = unpickle(await Deno.readFile(fixture("recursive_p2.pkl")), source);
  assert.ok(Array.isArray(value) && value.length === 2);
  for (const [tuple, length] of [[value[0], 4], [value[1], 2]] as const) {
    assert.ok(tuple instanceof PickleTuple);
    assert.equal(tuple.items.length, length);
    const list = tuple.items[0];
    assert.ok(Array.isArray(list));
    assert.equal(list[0], tuple);
    assert.deepEqual(tuple.items.slice(1), [1, 2, 3].slice(0, length - 1));
  }
});

const encoder = new TextEncoder();

/** A pickle from opcode bytes, text (GLOBAL operands) and byte runs, after PROTO 2 and before STOP. */
function pickle(...parts: (number | string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((part) =>
    typeof part === "number" ? [part] : typeof part === "string" ? encoder.encode(part) : part
  );
  const bytes = new Uint8Array(3 + chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  bytes.set([0x80, 0x02]);
  let at = 2;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  bytes[at] = 0x2e;
  return bytes;
}

function rejectsForbidden(bytes: Uint8Array, forbidden: string, pattern: RegExp) {
  assert.throws(() => unpickle(bytes, source), (error: Error) => {
    assert.ok(error instanceof ForbiddenPickleError, `${error.name}: ${error.message}`);
    assert.equal(error.forbidden, forbidden);
    assert.match(error.message, pattern);
    return true;
  });
}

function rejectsMalformed(bytes: Uint8Array, pattern: RegExp) {
  assert.throws(() => unpickle(bytes, source), (error: Error) => {
    assert.ok(
      error instanceof CheckpointFormatError && !(error instanceof ForbiddenPickleError),
      error.message,
    );
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("unpickle() rejects globals outside the allowlist, with their offset", () => {
  rejectsForbidden(
    pickle("cbuiltins\neval\n"),
    "builtins.eval",
    /forbidden global "builtins\.eval" at pickle offset 2 .*file offset 102/,
  );
  rejectsForbidden(pickle("cos\nsystem\n"), "os.system", /may be malicious/);
  // Protocol 4 names globals with STACK_GLOBAL.
  rejectsForbidden(
    pickle(0x8c, 8, "builtins", 0x8c, 4, "exec", 0x93),
    "builtins.exec",
    /pickle offset 18 /,
  );
});

Deno.test("unpickle() rejects opcodes that build arbitrary objects", () => {
  rejectsForbidden(
    pickle(0x28, 0x69, "os\nsystem\n"),
    "INST",
    /forbidden opcode INST \(0x69\) at pickle offset 3 /,
  );
  rejectsForbidden(pickle(0x28, "ccollections\nOrderedDict\n", 0x6f), "OBJ", /OBJ/);
  rejectsForbidden(pickle("ccollections\nOrderedDict\n", 0x29, 0x81), "NEWOBJ", /NEWOBJ/);
  rejectsForbidden(
    pickle("ccollections\nOrderedDict\n", 0x29, 0x7d, 0x92),
    "NEWOBJ_EX",
    /NEWOBJ_EX/,
  );
  rejectsForbidden(pickle(0x82, 1), "EXT1", /EXT1/);
});

Deno.test("unpickle() allows REDUCE only on allowlisted callables and BUILD only on an OrderedDict", () => {
  rejectsForbidden(
    pickle("ctorch\nFloatStorage\n", 0x29, 0x52),
    "REDUCE",
    /calling torch\.FloatStorage/,
  );
  rejectsForbidden(pickle(0x7d, 0x29, 0x52), "REDUCE", /calling a dict/);
  rejectsForbidden(pickle(0x7d, 0x7d, 0x62), "BUILD", /state of a dict/);
  const ordered = unpickle(pickle("ccollections\nOrderedDict\n", 0x29, 0x52, 0x7d, 0x62), source);
  assert.ok(ordered instanceof Map);
});

Deno.test("unpickle() rejects bad calls of allowlisted callables and bad persistent ids", () => {
  rejectsMalformed(
    pickle("ctorch._utils\n_rebuild_tensor_v2\n", 0x29, 0x52),
    /_rebuild_tensor_v2: takes 6 or 7 arguments, got 0/,
  );
  rejectsMalformed(
    pickle("ccollections\nOrderedDict\n", 0x4b, 1, 0x85, 0x52),
    /OrderedDict: takes no arguments/,
  );
  rejectsMalformed(pickle(0x58, 3, 0, 0, 0, "abc", 0x51), /persistent id must be/);
  rejectsForbidden(
    pickle("ctorch\nComplexFloatStorage\n"),
    "torch.ComplexFloatStorage",
    /forbidden global/,
  );
});

Deno.test("unpickle() rejects malformed pickles with the offset of the problem", () => {
  rejectsMalformed(
    pickle(0xff),
    /unknown opcode 0xff at pickle offset 2 of "test\/data\.pkl" \(file offset 102\)/,
  );
  rejectsMalformed(pickle(0x67, "0\n"), /unsupported opcode GET/);
  rejectsMalformed(pickle(0x8f), /unsupported opcode EMPTY_SET/);
  rejectsMalformed(new Uint8Array([0x80, 0x02, 0x4e]), /no STOP opcode/);
  rejectsMalformed(
    new Uint8Array([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e]),
    /truncated pickle/,
  );
  rejectsMalformed(
    new Uint8Array([0x80, 0x02, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x2e]),
    /exceeds the pickle/,
  );
  rejectsMalformed(pickle(0x30), /stack underflow/);
  rejectsMalformed(pickle(0x74), /no MARK/);
  rejectsMalformed(pickle(0x28, 0x2e), /stack underflow/);
  rejectsMalformed(pickle(0x68, 5), /memo entry 5 was never stored/);
  rejectsMalformed(pickle(0x8c, 2, 0xc3, 0x28), /invalid UTF-8/);
  rejectsMalformed(new Uint8Array([0x80, 0x06, 0x4e, 0x2e]), /unsupported pickle protocol 6/);
  rejectsMalformed(pickle(0x4e, 0x4e, 0x4e, 0x73), /SETITEM on None/);
  rejectsMalformed(pickle(0x7d, 0x5d, 0x4e, 0x73), /unhashable dict key: a list/);
  rejectsMalformed(pickle(0x8b, 0xff, 0xff, 0, 0), /LONG4 of 65535 bytes/);
});

Deno.test("unpickle() bounds its stack, memo and nesting", () => {
  const repeat = (byte: number, count: number) => new Uint8Array(count).fill(byte);
  rejectsMalformed(pickle(repeat(0x28, MAX_MARK_DEPTH + 1)), /nests deeper than/);
  rejectsMalformed(pickle(repeat(0x4e, MAX_STACK + 1)), /stack exceeds/);
  rejectsMalformed(pickle(0x4e, repeat(0x94, MAX_MEMO + 1)), /memo exceeds/);
});

Deno.test("unpickle() maps a torch storage class to its dtype", () => {
  const value = unpickle(pickle("ctorch\nBFloat16Storage\n"), source);
  assert.ok(value instanceof PickleGlobal);
  assert.equal(value.storageDType, "BF16");
});

Deno.test("unpickle() throws only checkpoint errors for mutated torch pickles and random bytes", async () => {
  using file = await RandomAccessFile.open(fixture("views.pth"));
  const zip = await ZipArchive.open(file);
  const entry = zip.get("views/data.pkl");
  assert.ok(entry !== undefined);
  const valid = await zip.readAll(entry);
  const check = (bytes: Uint8Array) => {
    try {
      unpickle(bytes, source);
    } catch (error) {
      if (!(error instanceof CheckpointFormatError)) throw error;
    }
  };
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.nat({ max: valid.length }),
      (changes, length) => {
        const bytes = valid.slice(0, length);
        for (const [at, value] of changes) if (at < bytes.length) bytes[at] = value;
        check(bytes);
      },
    ),
    { numRuns: 2000 },
  );
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => check(bytes)), {
    numRuns: 2000,
  });
});
