/**
 * A restricted unpickler for the `data.pkl` of a torch.save archive, in the spirit of PyTorch's
 * `torch.load(weights_only=True)`. It runs the binary opcodes of pickle protocols 2 to 5 that a
 * state dict of tensors uses and calls only an allowlist of constructors
 * (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`,
 * `torch.device`) and storage classes; any other global, an opcode that
 * builds arbitrary objects (INST, OBJ, NEWOBJ, EXT*), REDUCE on anything but the allowlist or BUILD
 * on anything but an OrderedDict is refused with a {@link ForbiddenPickleError} naming it and its
 * offset. Nothing from the file ever becomes code or an object key: dicts are `Map`s.
 *
 * Memory is bounded by the input: stack, memo and mark depth are capped, and no value is decoded
 * without first checking its length against the bytes left. There is no recursion.
 *
 * @module
 */

import { CheckpointFormatError, ForbiddenPickleError } from "./errors.ts";
import type { ElementDType } from "./tensor_source.ts";

/** Most values the pickle stack may hold at once. */
export const MAX_STACK = 1 << 20;
/** Most memo entries. */
export const MAX_MEMO = 1 << 20;
/** Deepest MARK nesting (containers inside containers). */
export const MAX_MARK_DEPTH = 1000;
/** Most bytes in one integer (LONG1/LONG4). */
const MAX_LONG_BYTES = 1024;
/** Most dimensions a tensor may have. */
const MAX_RANK = 64;

/** A Python tuple (a plain array stands for a list). */
export class PickleTuple {
  /** The tuple's items. */
  readonly items: readonly PickleValue[];

  /** @param items the tuple's items */
  constructor(items: readonly PickleValue[]) {
    this.items = items;
  }
}

/** A `collections.OrderedDict`: a dict that BUILD may set attributes (`_metadata`) on. */
export class PickleOrderedDict extends Map<PickleValue, PickleValue> {}

/** A storage a tensor views: the persistent id `('storage', <class>, key, location, numel)`. */
export class StorageRef {
  /** Element type, from the storage class (e.g. `torch.BFloat16Storage`). */
  readonly dtype: ElementDType;
  /** Key of the storage: its bytes are the archive member `<archive>/data/<key>`. */
  readonly key: string;
  /** Device it was saved from, e.g. `cpu` or `cuda:0` (informational). */
  readonly location: string;
  /** Number of elements in the storage. */
  readonly numel: number;

  /** Describes one storage. */
  constructor(dtype: ElementDType, key: string, location: string, numel: number) {
    this.dtype = dtype;
    this.key = key;
    this.location = location;
    this.numel = numel;
  }
}

/** A tensor: a strided view into a storage (all counts in elements). */
export class TensorRef {
  /** The storage viewed. */
  readonly storage: StorageRef;
  /** Index of the view's first element in the storage. */
  readonly offset: number;
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Elements to step in the storage per step along each axis. */
  readonly strides: readonly number[];

  /** Describes one view. */
  constructor(
    storage: StorageRef,
    offset: number,
    shape: readonly number[],
    strides: readonly number[],
  ) {
    this.storage = storage;
    this.offset = offset;
    this.shape = shape;
    this.strides = strides;
  }
}

/** An allowlisted global: a callable REDUCE may apply, or a storage class for a persistent id. */
export class PickleGlobal {
  /** Qualified name, e.g. `torch._utils._rebuild_tensor_v2`. */
  readonly name: string;
  /** What REDUCE runs, for a callable. */
  readonly call: ((args: readonly PickleValue[], fail: Fail) => PickleValue) | undefined;
  /** The element type, for a storage class. */
  readonly storageDType: ElementDType | undefined;

  /** Describes one allowlisted global. */
  constructor(
    name: string,
    call: ((args: readonly PickleValue[], fail: Fail) => PickleValue) | undefined,
    storageDType: ElementDType | undefined,
  ) {
    this.name = name;
    this.call = call;
    this.storageDType = storageDType;
  }
}

/** Anything the unpickler can produce. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PickleTuple
  | Map<PickleValue, PickleValue>
  | StorageRef
  | TensorRef
  | PickleGlobal;

/** Reports a malformed call or value; never returns. */
export type Fail = (detail: string) => never;

/** Where the pickle comes from, for error messages. */
export interface PickleSource {
  /** The checkpoint file. */
  readonly path: string;
  /** The archive member holding the pickle, e.g. `archive/data.pkl`. */
  readonly member: string;
  /** Offset in the file of the pickle's first byte, so errors carry file offsets. */
  readonly fileOffset: number;
}

const STORAGE_CLASSES: Readonly<Record<string, ElementDType>> = {
  DoubleStorage: "F64",
  FloatStorage: "F32",
  HalfStorage: "F16",
  BFloat16Storage: "BF16",
  LongStorage: "I64",
  IntStorage: "I32",
  ShortStorage: "I16",
  CharStorage: "I8",
  ByteStorage: "U8",
  BoolStorage: "BOOL",
};

function isNatural(value: PickleValue): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function naturals(value: PickleValue, what: string, fail: Fail): number[] {
  if (
    !(value instanceof PickleTuple) || value.items.length > MAX_RANK ||
    !value.items.every(isNatural)
  ) {
    return fail(`${what} must be a tuple of at most ${MAX_RANK} non-negative integers`);
  }
  return value.items as number[];
}

/** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])`. */
function rebuildTensor(args: readonly PickleValue[], fail: Fail): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) return fail("its first argument must be a storage");
  if (offset === undefined || !isNatural(offset)) {
    return fail("the storage offset must be a non-negative integer");
  }
  const shape = naturals(size ?? null, "the size", fail);
  const strides = naturals(stride ?? null, "the stride", fail);
  if (shape.length !== strides.length) {
    return fail(`the size has ${shape.length} dimensions but the stride ${strides.length}`);
  }
  return new TensorRef(storage, offset, shape, strides);
}

function allowlist(): ReadonlyMap<string, PickleGlobal> {
  const callables: [string, (args: readonly PickleValue[], fail: Fail) => PickleValue][] = [
    ["collections.OrderedDict", (args, fail) => {
      if (args.length !== 0) return fail("takes no arguments in a state dict");
      return new PickleOrderedDict();
    }],
    ["torch._utils._rebuild_tensor_v2", (args, fail) => {
      if (args.length !== 6 && args.length !== 7) {
        return fail(`takes 6 or 7 arguments, got ${args.length}`);
      }
      return rebuildTensor(args, fail);
    }],
    ["torch._utils._rebuild_parameter", (args, fail) => {
      if (args.length !== 3 || !(args[0] instanceof TensorRef)) {
        return fail("takes a tensor and 2 more arguments");
      }
      return args[0];
    }],
    ["torch.device", (args, fail) => {
      const [type, index] = args;
      if (
        typeof type !== "string" || args.length > 2 || (index !== undefined && !isNatural(index))
      ) {
        return fail("takes a device type and an optional index");
      }
      return index === undefined ? type : `${type}:${index}`;
    }],
  ];
  const globals = new Map<string, PickleGlobal>();
  for (const [name, call] of callables) globals.set(name, new PickleGlobal(name, call, undefined));
  for (const [name, dtype] of Object.entries(STORAGE_CLASSES)) {
    globals.set(`torch.${name}`, new PickleGlobal(`torch.${name}`, undefined, dtype));
  }
  return globals;
}

const ALLOWED_GLOBALS = allowlist();

/** Opcodes that build arbitrary objects or consult the extension registry: never allowed. */
const FORBIDDEN_OPCODES: Readonly<Record<number, string>> = {
  0x69: "INST",
  0x6f: "OBJ",
  0x81: "NEWOBJ",
  0x92: "NEWOBJ_EX",
  0x82: "EXT1",
  0x83: "EXT2",
  0x84: "EXT4",
};

/** Opcodes a torch.save state dict never uses (protocol 0 text forms, DUP, sets, buffers). */
const UNSUPPORTED_OPCODES: Readonly<Record<number, string>> = {
  0x32: "DUP",
  0x49: "INT",
  0x4c: "LONG",
  0x46: "FLOAT",
  0x53: "STRING",
  0x54: "BINSTRING",
  0x55: "SHORT_BINSTRING",
  0x56: "UNICODE",
  0x50: "PERSID",
  0x67: "GET",
  0x70: "PUT",
  0x8f: "EMPTY_SET",
  0x90: "ADDITEMS",
  0x91: "FROZENSET",
  0x96: "BYTEARRAY8",
  0x97: "NEXT_BUFFER",
  0x98: "READONLY_BUFFER",
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Names the kind of `value` for error messages, e.g. `a tuple`, `None`, `torch.FloatStorage`. */
export function describe(value: PickleValue | undefined): string {
  if (value === undefined) return "nothing";
  if (value === null) return "None";
  if (value instanceof PickleGlobal) return value.name;
  if (value instanceof PickleTuple) return "a tuple";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Map) return "a dict";
  if (value instanceof StorageRef) return "a storage";
  if (value instanceof TensorRef) return "a tensor";
  if (value instanceof Uint8Array) return "bytes";
  return `a ${typeof value}`;
}

/**
 * Unpickles `bytes`, allowing only what a state dict of tensors needs. Throws
 * {@link ForbiddenPickleError} for a global or opcode outside the allowlist and
 * {@link CheckpointFormatError} for a malformed pickle.
 *
 * @param bytes the pickle
 * @param source where it comes from, for error messages
 * @returns the value: dicts are `Map`s, tuples {@link PickleTuple}s, tensors {@link TensorRef}s
 */
export function unpickle(bytes: Uint8Array, source: PickleSource): PickleValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: PickleValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;
  let at = 0;

  const where = () =>
    `at pickle offset ${at} of "${source.member}" (file offset ${source.fileOffset + at})`;
  const fail: Fail = (detail) => {
    throw new CheckpointFormatError(source.path, source.fileOffset + at, `${detail} ${where()}`);
  };
  const forbid: (what: string, detail: string) => never = (what, detail) => {
    throw new ForbiddenPickleError(
      source.path,
      source.fileOffset + at,
      what,
      `${detail} ${where()}: a tensor checkpoint needs only collections.OrderedDict, ` +
        "torch._utils._rebuild_tensor_v2 and torch storage classes; " +
        "this file may be malicious, do not load it with torch.load either",
    );
  };

  const take = (n: number): number => {
    if (n > bytes.length - pos) {
      fail(`truncated pickle: ${n} bytes needed, ${bytes.length - pos} left`);
    }
    const start = pos;
    pos += n;
    return start;
  };
  const push = (value: PickleValue) => {
    if (stack.length >= MAX_STACK) fail(`pickle stack exceeds ${MAX_STACK} values`);
    stack.push(value);
  };
  const pop = (): PickleValue => {
    if (stack.length === 0 || stack.length === marks[marks.length - 1]) {
      fail("pickle stack underflow");
    }
    return stack.pop()!;
  };
  const top = (): PickleValue => {
    if (stack.length === 0 || stack.length === marks[marks.length - 1]) {
      fail("pickle stack underflow");
    }
    return stack[stack.length - 1]!;
  };
  const popMark = (): PickleValue[] => {
    const mark = marks.pop();
    if (mark === undefined) return fail("no MARK to pop to");
    return stack.splice(mark);
  };
  const text = (start: number, length: number): string => {
    try {
      return utf8.decode(bytes.subarray(start, start + length));
    } catch {
      return fail("invalid UTF-8 in a string");
    }
  };
  const blob = (length: number): Uint8Array => {
    const start = take(length);
    return bytes.slice(start, start + length);
  };
  const length64 = (): number => {
    const value = view.getBigUint64(take(8), true);
    if (value > BigInt(bytes.length)) {
      fail(`length ${value} exceeds the pickle's ${bytes.length} bytes`);
    }
    return Number(value);
  };
  const memoize = (index: number, value: PickleValue) => {
    if (!memo.has(index) && memo.size >= MAX_MEMO) fail(`pickle memo exceeds ${MAX_MEMO} entries`);
    memo.set(index, value);
  };
  const recall = (index: number): PickleValue => {
    const value = memo.get(index);
    if (value === undefined) return fail(`memo entry ${index} was never stored`);
    return value;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) return fail("truncated pickle: GLOBAL name has no newline");
    const value = text(pos, end - pos);
    pos = end + 1;
    return value;
  };
  const global = (module: PickleValue, name: PickleValue): PickleGlobal => {
    if (typeof module !== "string" || typeof name !== "string") {
      return fail("STACK_GLOBAL needs two strings");
    }
    const qualified = `${module}.${name}`;
    return ALLOWED_GLOBALS.get(qualified) ??
      forbid(qualified, `forbidden global ${JSON.stringify(qualified)}`);
  };
  const setItems = (dict: PickleValue, items: PickleValue[]) => {
    if (!(dict instanceof Map)) return fail(`SETITEM on ${describe(dict)}, not a dict`);
    if (items.length % 2 !== 0) return fail("SETITEMS with an odd number of values");
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i]!;
      if (Array.isArray(key) || key instanceof Map) fail(`unhashable dict key: ${describe(key)}`);
      dict.set(key, items[i + 1]!);
    }
  };
  const appendItems = (list: PickleValue, items: PickleValue[]) => {
    if (!Array.isArray(list)) return fail(`APPEND on ${describe(list)}, not a list`);
    if (list.length + items.length > MAX_STACK) fail(`list exceeds ${MAX_STACK} items`);
    for (const item of items) list.push(item);
  };
  const integer = (start: number, length: number): number | bigint => {
    let value = 0n;
    for (let i = length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[start + i]!);
    // Two's complement: the top bit of the last byte is the sign.
    if (length > 0 && bytes[start + length - 1]! & 0x80) value -= 1n << BigInt(8 * length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  };

  for (;;) {
    at = pos;
    if (pos >= bytes.length) fail("truncated pickle: no STOP opcode");
    const op = bytes[pos++]!;
    switch (op) {
      case 0x80: { // PROTO
        const version = bytes[take(1)]!;
        if (version > 5) fail(`unsupported pickle protocol ${version}`);
        break;
      }
      case 0x95: // FRAME: a length prefix for buffered reading; the whole pickle is in memory
        length64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        if (marks.length >= MAX_MARK_DEPTH) {
          fail(`pickle nests deeper than ${MAX_MARK_DEPTH} MARKs`);
        }
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x4a: // BININT
        push(view.getInt32(take(4), true));
        break;
      case 0x4b: // BININT1
        push(bytes[take(1)]!);
        break;
      case 0x4d: // BININT2
        push(view.getUint16(take(2), true));
        break;
      case 0x8a: { // LONG1
        const n = bytes[take(1)]!;
        push(integer(take(n), n));
        break;
      }
      case 0x8b: { // LONG4
        const n = view.getInt32(take(4), true);
        if (n < 0 || n > MAX_LONG_BYTES) fail(`LONG4 of ${n} bytes`);
        push(integer(take(n), n));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        push(view.getFloat64(take(8), false));
        break;
      case 0x8c: { // SHORT_BINUNICODE
        const n = bytes[take(1)]!;
        push(text(take(n), n));
        break;
      }
      case 0x58: { // BINUNICODE
        const n = view.getUint32(take(4), true);
        push(text(take(n), n));
        break;
      }
      case 0x8d: { // BINUNICODE8
        const n = length64();
        push(text(take(n), n));
        break;
      }
      case 0x43: { // SHORT_BINBYTES
        const n = bytes[take(1)]!;
        push(blob(n));
        break;
      }
      case 0x42: { // BINBYTES
        const n = view.getUint32(take(4), true);
        push(blob(n));
        break;
      }
      case 0x8e: { // BINBYTES8
        const n = length64();
        push(blob(n));
        break;
      }
      case 0x29: // EMPTY_TUPLE
        push(new PickleTuple([]));
        break;
      case 0x74: // TUPLE
        push(new PickleTuple(popMark()));
        break;
      case 0x85: // TUPLE1
        push(new PickleTuple([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        push(new PickleTuple([pop(), b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        push(new PickleTuple([pop(), b, c]));
        break;
      }
      case 0x5d: // EMPTY_LIST
        push([]);
        break;
      case 0x6c: // LIST
        push(popMark());
        break;
      case 0x61: { // APPEND
        const item = pop();
        appendItems(top(), [item]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push(new Map());
        break;
      case 0x64: { // DICT
        const dict = new Map<PickleValue, PickleValue>();
        setItems(dict, popMark());
        push(dict);
        break;
      }
      case 0x73: { // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x68: // BINGET
        push(recall(bytes[take(1)]!));
        break;
      case 0x6a: // LONG_BINGET
        push(recall(view.getUint32(take(4), true)));
        break;
      case 0x71: // BINPUT
        memoize(bytes[take(1)]!, top());
        break;
      case 0x72: // LONG_BINPUT
        memoize(view.getUint32(take(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memoize(memo.size, top());
        break;
      case 0x63: { // GLOBAL
        const module = line();
        push(global(module, line()));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        push(global(pop(), name));
        break;
      }
      case 0x52: { // REDUCE
        const args = pop();
        const callable = pop();
        if (!(callable instanceof PickleGlobal) || callable.call === undefined) {
          forbid("REDUCE", `forbidden REDUCE: calling ${describe(callable)} is not allowed`);
        }
        if (!(args instanceof PickleTuple)) {
          return fail(`REDUCE arguments must be a tuple, got ${describe(args)}`);
        }
        push(
          callable.call(args.items, (detail) => fail(`bad call of ${callable.name}: ${detail}`)),
        );
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        // nn.Module state dicts set `_metadata` (per-module versions) on their OrderedDict; nothing
        // in it is needed to read tensors, so the state is dropped.
        if (!(target instanceof PickleOrderedDict)) {
          forbid(
            "BUILD",
            `forbidden BUILD: setting the state of ${describe(target)} is not allowed`,
          );
        }
        if (!(state instanceof Map) && !(state instanceof PickleTuple) && state !== null) {
          fail(`BUILD state must be a dict or tuple, got ${describe(state)}`);
        }
        break;
      }
      case 0x51: { // BINPERSID
        push(storage(pop(), fail));
        break;
      }
      default: {
        const forbidden = FORBIDDEN_OPCODES[op];
        if (forbidden !== undefined) {
          forbid(forbidden, `forbidden opcode ${forbidden} (0x${hex(op)})`);
        }
        const unsupported = UNSUPPORTED_OPCODES[op];
        if (unsupported !== undefined) {
          fail(`unsupported opcode ${unsupported} (0x${hex(op)}), which torch.save never writes`);
        }
        fail(`unknown opcode 0x${hex(op)}`);
      }
    }
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Resolves the persistent id torch.save writes for a storage. */
function storage(pid: PickleValue, fail: Fail): StorageRef {
  if (!(pid instanceof PickleTuple) || pid.items.length !== 5 || pid.items[0] !== "storage") {
    return fail(
      `persistent id must be ('storage', class, key, location, numel), got ${describe(pid)}`,
    );
  }
  const [, type, key, location, numel] = pid.items;
  if (!(type instanceof PickleGlobal) || type.storageDType === undefined) {
    return fail(`persistent id names ${describe(type)}, not a storage class this reader supports`);
  }
  if (
    typeof key !== "string" || typeof location !== "string" || numel === undefined ||
    !isNatural(numel)
  ) {
    return fail(
      "persistent id must hold a string key, a string location and a non-negative element count",
    );
  }
  return new StorageRef(type.storageDType, key, location, numel);
}
