/**
 * Decodes model.mlmodel into the same {@link Model} IR the writer takes. It is the parser the
 * CPU backend's loader stands on, so it treats its input as hostile: through a
 * {@link BoundedReader}, every length is checked against the end of its enclosing message before
 * use, malformed varints and tags are rejected, unknown fields are skipped, and nothing is
 * allocated beyond what the bytes themselves hold.
 * Features llamane does not use (flexible shapes, states, control flow, lists and dictionaries)
 * are rejected with a message naming them.
 *
 * Nesting depth is bounded by the schema rather than by a counter: the only self-nesting
 * messages (Block inside Operation, Value inside list or dictionary values) are rejected as
 * unsupported or, for `Program.attributes`, skipped whole, so decoding never recurses on data.
 *
 * @module
 */

import { BoundedReader, type Field } from "../protobuf/bounded_reader.ts";
import { type DType, DTYPE_INFO, dtypeFromProtoCode, isBlobDType } from "./dtype.ts";
import { CoremlFormatError, MilProgramError, TensorShapeError } from "./errors.ts";
import {
  type Binding,
  type Block,
  type MilFunction,
  type NamedValueType,
  type Operation,
  type Program,
  type Value,
  WEIGHT_FILE_REFERENCE,
} from "./mil.ts";
import {
  EMPTY_METADATA,
  type FeatureDescription,
  type FeatureDType,
  type FunctionDescription,
  type Metadata,
  type Model,
  type ModelDescription,
} from "./model.ts";
import { ARRAY_DATA_TYPE, FIELD, PROGRAM_VERSION } from "./proto_fields.ts";
import { checkShape, storedByteLength, type TensorType, valuesFromBytes } from "./tensor.ts";
import { validateModel } from "./validate.ts";

/** `FeatureType` fields 1-8 are the members of its `Type` oneof; 1000 is `isOptional`. */
const FEATURE_TYPE_MEMBERS = 8;
/** `ValueType` fields 1-5 are its members: tensor, list, tuple, dictionary, state. */
const VALUE_TYPE_MEMBERS = 5;
/** `ImmediateValue` fields 1-4: tensor, tuple, list, dictionary. */
const IMMEDIATE_VALUE_MEMBERS = 4;
/** `TensorValue` fields 1-7; 5 (longInts) and 6 (doubles) carry dtypes llamane does not use. */
const TENSOR_VALUE_MEMBERS = 7;

/** Where each function and op started in the file, to place validation errors. */
interface Offsets {
  readonly functions: Map<string, number>;
  readonly operations: Map<string, number[]>;
}

/**
 * Decodes the bytes of model.mlmodel and validates the result (see `validateModel`).
 *
 * @param path the file the bytes came from, for error messages
 * @throws {CoremlFormatError} on malformed or unsupported content, with the byte offset
 */
export function decodeModel(bytes: Uint8Array, path: string): Model {
  function fail(offset: number | undefined, detail: string, cause?: unknown): never {
    throw new CoremlFormatError(
      path,
      offset,
      `Cannot read model "${path}": ${detail}`,
      cause === undefined ? undefined : { cause },
    );
  }
  const c: BoundedReader = new BoundedReader(bytes, fail);
  const offsets: Offsets = { functions: new Map(), operations: new Map() };
  let specificationVersion = 0;
  let description: ModelDescription | undefined;
  let program: Program | undefined;
  c.fields(bytes.length, "Model", (f) => {
    const F = FIELD.Model;
    if (f.no === F.specificationVersion) specificationVersion = c.int32(f, "specificationVersion");
    else if (f.no === F.description) {
      description = c.message(f, "ModelDescription", (end) => readDescription(c, end));
    } else if (f.no === F.mlProgram) {
      program = c.message(f, "Program", (end) => readProgram(c, end, offsets));
    } else c.skip(f);
  });
  if (program === undefined) {
    fail(undefined, "it is not an ML Program (field 502 `mlProgram` is absent)");
  }
  const model: Model = {
    specificationVersion,
    description: description ?? {
      inputs: [],
      outputs: [],
      functions: [],
      defaultFunctionName: "",
      metadata: EMPTY_METADATA,
    },
    program,
  };
  try {
    validateModel(model);
  } catch (error) {
    if (!(error instanceof MilProgramError) && !(error instanceof TensorShapeError)) throw error;
    const where = error instanceof MilProgramError ? error : undefined;
    const fn = where?.functionName;
    const op = where?.operationIndex;
    const offset = fn === undefined
      ? undefined
      : op === undefined
      ? offsets.functions.get(fn)
      : offsets.operations.get(fn)?.[op];
    fail(
      offset,
      `invalid program${offset === undefined ? "" : ` at offset ${offset}`}: ${error.message}`,
      error,
    );
  }
  return model;
}

// --- ModelDescription ---------------------------------------------------------------------------

function readDescription(c: BoundedReader, end: number): ModelDescription {
  const inputs: FeatureDescription[] = [];
  const outputs: FeatureDescription[] = [];
  const functions: FunctionDescription[] = [];
  let defaultFunctionName = "";
  let metadata = EMPTY_METADATA;
  const F = FIELD.ModelDescription;
  c.fields(end, "ModelDescription", (f) => {
    if (f.no === F.input) {
      inputs.push(c.message(f, "FeatureDescription", (e) => readFeature(c, e, f.offset)));
    } else if (f.no === F.output) {
      outputs.push(c.message(f, "FeatureDescription", (e) => readFeature(c, e, f.offset)));
    } else if (f.no === F.state) unsupported(c, f, "stateful models (state features)");
    else if (f.no === F.functions) {
      functions.push(c.message(f, "FunctionDescription", (e) => readFunctionDescription(c, e)));
    } else if (f.no === F.defaultFunctionName) {
      defaultFunctionName = c.string(f, "defaultFunctionName");
    } else if (f.no === F.metadata) metadata = c.message(f, "Metadata", (e) => readMetadata(c, e));
    else c.skip(f);
  });
  return { inputs, outputs, functions, defaultFunctionName, metadata };
}

function unsupported(c: BoundedReader, f: Field, what: string): never {
  c.fail(
    f.offset,
    `unsupported feature at offset ${f.offset} (${f.message} field ${f.no}): ${what}`,
  );
}

function readFunctionDescription(c: BoundedReader, end: number): FunctionDescription {
  let name = "";
  const inputs: FeatureDescription[] = [];
  const outputs: FeatureDescription[] = [];
  const F = FIELD.FunctionDescription;
  c.fields(end, "FunctionDescription", (f) => {
    if (f.no === F.name) name = c.string(f, "name");
    else if (f.no === F.input) {
      inputs.push(c.message(f, "FeatureDescription", (e) => readFeature(c, e, f.offset)));
    } else if (f.no === F.output) {
      outputs.push(c.message(f, "FeatureDescription", (e) => readFeature(c, e, f.offset)));
    } else if (f.no === F.state) unsupported(c, f, "stateful models (state features)");
    else c.skip(f);
  });
  return { name, inputs, outputs };
}

function readFeature(c: BoundedReader, end: number, offset: number): FeatureDescription {
  let name = "";
  let shortDescription = "";
  let type: { dtype: FeatureDType; shape: number[] } | undefined;
  const F = FIELD.FeatureDescription;
  c.fields(end, "FeatureDescription", (f) => {
    if (f.no === F.name) name = c.string(f, "name");
    else if (f.no === F.shortDescription) shortDescription = c.string(f, "shortDescription");
    else if (f.no === F.type) {
      type = c.message(f, "FeatureType", (e) => {
        let array: { dtype: FeatureDType; shape: number[] } | undefined;
        c.fields(e, "FeatureType", (g) => {
          if (g.no === FIELD.FeatureType.multiArrayType) {
            array = c.message(g, "ArrayFeatureType", (e2) => readArrayFeature(c, e2));
          } else if (g.no <= FEATURE_TYPE_MEMBERS) {
            unsupported(c, g, "feature types other than multi-arrays");
          } else c.skip(g);
        });
        return array;
      });
    } else c.skip(f);
  });
  if (type === undefined) {
    c.fail(offset, `feature "${name}" at offset ${offset} has no multi-array type`);
  }
  return { name, shortDescription, ...type };
}

function readArrayFeature(c: BoundedReader, end: number): { dtype: FeatureDType; shape: number[] } {
  const shape: number[] = [];
  let code = 0;
  const F = FIELD.ArrayFeatureType;
  let dataTypeOffset = end;
  c.fields(end, "ArrayFeatureType", (f) => {
    if (f.no === F.shape) {
      c.int64s(f, "shape", (v) => {
        if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
          c.fail(f.offset, `multi-array dimension "${v}" at offset ${f.offset} is out of range`);
        }
        shape.push(Number(v));
      });
    } else if (f.no === F.dataType) {
      dataTypeOffset = f.offset;
      code = c.int32(f, "dataType");
    } else if (f.no === F.enumeratedShapes || f.no === F.shapeRange) {
      unsupported(c, f, "flexible shapes (enumerated shapes or shape ranges)");
    } else c.skip(f);
  });
  const dtype = (Object.keys(ARRAY_DATA_TYPE) as FeatureDType[]).find((d) =>
    ARRAY_DATA_TYPE[d] === code
  );
  if (dtype === undefined) {
    c.fail(
      dataTypeOffset,
      `multi-array data type "${code}" at offset ${dataTypeOffset} is unsupported (FLOAT16, ` +
        `FLOAT32 and INT32 are)`,
    );
  }
  return { dtype, shape };
}

function readMetadata(c: BoundedReader, end: number): Metadata {
  const m = { ...EMPTY_METADATA, userDefined: new Map<string, string>() };
  const F = FIELD.Metadata;
  c.fields(end, "Metadata", (f) => {
    if (f.no === F.shortDescription) m.shortDescription = c.string(f, "shortDescription");
    else if (f.no === F.versionString) m.versionString = c.string(f, "versionString");
    else if (f.no === F.author) m.author = c.string(f, "author");
    else if (f.no === F.license) m.license = c.string(f, "license");
    else if (f.no === F.userDefined) {
      const [key, value] = readMapEntry(c, f, "userDefined", (g) => c.string(g, "value"));
      m.userDefined.set(key, value ?? "");
    } else c.skip(f);
  });
  return m;
}

/** Reads one `map<string, V>` entry; the value is `undefined` when the entry leaves it out. */
function readMapEntry<V>(
  c: BoundedReader,
  f: Field,
  map: string,
  value: (g: Field) => V,
): [string, V | undefined] {
  return c.message(f, `${map} entry`, (end) => {
    let key = "";
    let v: V | undefined;
    c.fields(end, `${map} entry`, (g) => {
      if (g.no === FIELD.MapEntry.key) key = c.string(g, "key");
      else if (g.no === FIELD.MapEntry.value) v = value(g);
      else c.skip(g);
    });
    return [key, v];
  });
}

/** Adds a map entry, rejecting a key that appears twice. */
function putUnique<V>(
  c: BoundedReader,
  f: Field,
  map: Map<string, V>,
  key: string,
  value: V,
  what: string,
) {
  if (map.has(key)) c.fail(f.offset, `${what} "${key}" appears twice (at offset ${f.offset})`);
  map.set(key, value);
}

// --- MIL ----------------------------------------------------------------------------------------

function readProgram(c: BoundedReader, end: number, offsets: Offsets): Program {
  const functions = new Map<string, MilFunction>();
  let version = 0;
  let versionOffset = end;
  const F = FIELD.Program;
  c.fields(end, "Program", (f) => {
    if (f.no === F.version) {
      versionOffset = f.offset;
      version = c.count(f, "version");
    } else if (f.no === F.functions) {
      const fnOffset = f.offset;
      const ops: number[] = [];
      const [name, fn] = readMapEntry(
        c,
        f,
        "functions",
        (g) => c.message(g, "Function", (e) => readFunction(c, e, g.offset, ops)),
      );
      if (fn === undefined) {
        c.fail(fnOffset, `function "${name}" at offset ${fnOffset} has no body`);
      }
      putUnique(c, f, functions, name, fn, "function");
      offsets.functions.set(name, fnOffset);
      offsets.operations.set(name, ops);
    } else c.skip(f);
  });
  if (version !== PROGRAM_VERSION) {
    c.fail(
      versionOffset,
      `MIL program version "${version}" is unsupported, expected ${PROGRAM_VERSION}`,
    );
  }
  return { functions };
}

function readFunction(
  c: BoundedReader,
  end: number,
  offset: number,
  opOffsets: number[],
): MilFunction {
  const inputs: NamedValueType[] = [];
  let opset = "";
  const blocks = new Map<string, { block: Block; ops: number[] }>();
  const F = FIELD.Function;
  c.fields(end, "Function", (f) => {
    if (f.no === F.inputs) {
      inputs.push(c.message(f, "NamedValueType", (e) => readNamedType(c, e, f.offset)));
    } else if (f.no === F.opset) opset = c.string(f, "opset");
    else if (f.no === F.blockSpecializations) {
      const ops: number[] = [];
      const [key, block] = readMapEntry(
        c,
        f,
        "block_specializations",
        (g) => c.message(g, "Block", (e) => readBlock(c, e, ops)),
      );
      putUnique(
        c,
        f,
        blocks,
        key,
        { block: block ?? { operations: [], outputs: [] }, ops },
        "block specialization",
      );
    } else c.skip(f);
  });
  const chosen = blocks.get(opset);
  if (chosen === undefined) {
    c.fail(
      offset,
      `function at offset ${offset} has no block specialized for its opset "${opset}"`,
    );
  }
  opOffsets.push(...chosen.ops);
  return { inputs, opset, block: chosen.block };
}

function readBlock(c: BoundedReader, end: number, opOffsets: number[]): Block {
  const outputs: string[] = [];
  const operations: Operation[] = [];
  const F = FIELD.Block;
  c.fields(end, "Block", (f) => {
    if (f.no === F.inputs) unsupported(c, f, "block inputs (nested blocks)");
    else if (f.no === F.outputs) outputs.push(c.string(f, "output"));
    else if (f.no === F.operations) {
      opOffsets.push(f.offset);
      operations.push(c.message(f, "Operation", (e) => readOperation(c, e, f.offset)));
    } else c.skip(f);
  });
  return { operations, outputs };
}

function readOperation(c: BoundedReader, end: number, offset: number): Operation {
  let type = "";
  const inputs = new Map<string, Binding[]>();
  const outputs: NamedValueType[] = [];
  const attributes = new Map<string, Value>();
  const F = FIELD.Operation;
  c.fields(end, "Operation", (f) => {
    if (f.no === F.type) type = c.string(f, "type");
    else if (f.no === F.inputs) {
      const [param, bindings] = readMapEntry(
        c,
        f,
        "inputs",
        (g) => c.message(g, "Argument", (e) => readArgument(c, e)),
      );
      putUnique(c, f, inputs, param, bindings ?? [], "op input");
    } else if (f.no === F.outputs) {
      outputs.push(c.message(f, "NamedValueType", (e) => readNamedType(c, e, f.offset)));
    } else if (f.no === F.blocks) unsupported(c, f, "control flow (nested blocks)");
    else if (f.no === F.attributes) {
      const valueOffset = f.offset;
      const [key, value] = readMapEntry(
        c,
        f,
        "attributes",
        (g) => c.message(g, "Value", (e) => readValue(c, e, g.offset)),
      );
      if (value === undefined) {
        c.fail(valueOffset, `attribute "${key}" at offset ${valueOffset} has no value`);
      }
      putUnique(c, f, attributes, key, value, "op attribute");
    } else c.skip(f);
  });
  const nameValue = attributes.get("name");
  attributes.delete("name");
  if (
    nameValue?.kind !== "immediate" || nameValue.dtype !== "string" ||
    nameValue.shape.length !== 0
  ) {
    c.fail(offset, `op "${type}" at offset ${offset} has no scalar string attribute "name"`);
  }
  const name = (nameValue.values as readonly string[])[0]!;
  return { type, name, inputs, outputs, attributes };
}

function readArgument(c: BoundedReader, end: number): Binding[] {
  const bindings: Binding[] = [];
  c.fields(end, "Argument", (f) => {
    if (f.no !== FIELD.Argument.arguments) return c.skip(f);
    bindings.push(c.message(f, "Binding", (e) => {
      let binding: Binding | undefined;
      c.fields(e, "Binding", (g) => {
        if (g.no === FIELD.Binding.name) binding = c.string(g, "name");
        else if (g.no === FIELD.Binding.value) {
          binding = c.message(g, "Value", (e2) => readValue(c, e2, g.offset));
        } else c.skip(g);
      });
      if (binding === undefined) c.fail(f.offset, `binding at offset ${f.offset} is empty`);
      return binding;
    }));
  });
  return bindings;
}

function readNamedType(c: BoundedReader, end: number, offset: number): NamedValueType {
  let name = "";
  let type: TensorType | undefined;
  c.fields(end, "NamedValueType", (f) => {
    if (f.no === FIELD.NamedValueType.name) name = c.string(f, "name");
    else if (f.no === FIELD.NamedValueType.type) {
      type = c.message(f, "ValueType", (e) => readValueType(c, e, f.offset));
    } else c.skip(f);
  });
  if (type === undefined) c.fail(offset, `value "${name}" at offset ${offset} has no type`);
  return { name, type };
}

function readValueType(c: BoundedReader, end: number, offset: number): TensorType {
  let type: TensorType | undefined;
  c.fields(end, "ValueType", (f) => {
    if (f.no === FIELD.ValueType.tensorType) {
      type = c.message(f, "TensorType", (e) => readTensorType(c, e, f.offset));
    } else if (f.no <= VALUE_TYPE_MEMBERS) {
      unsupported(c, f, "value types other than tensors (lists, tuples, dictionaries, states)");
    } else c.skip(f);
  });
  if (type === undefined) c.fail(offset, `value type at offset ${offset} is empty`);
  return type;
}

function readTensorType(c: BoundedReader, end: number, offset: number): TensorType {
  let code = 0;
  let rank = 0;
  const shape: number[] = [];
  const F = FIELD.TensorType;
  c.fields(end, "TensorType", (f) => {
    if (f.no === F.dataType) code = c.int32(f, "dataType");
    else if (f.no === F.rank) {
      const r = c.int32(f, "rank");
      if (r < 0) unsupported(c, f, "variadic rank");
      rank = r;
    } else if (f.no === F.dimensions) {
      shape.push(c.message(f, "Dimension", (e) => {
        let size: number | undefined;
        c.fields(e, "Dimension", (g) => {
          if (g.no === FIELD.Dimension.constant) {
            size = c.message(g, "ConstantDimension", (e2) => {
              let s = 0;
              c.fields(e2, "ConstantDimension", (h) => {
                if (h.no === FIELD.ConstantDimension.size) s = c.count(h, "size");
                else c.skip(h);
              });
              return s;
            });
          } else if (g.no === FIELD.Dimension.unknown) {
            unsupported(c, g, "flexible (unknown) dimensions");
          } else c.skip(g);
        });
        if (size === undefined) c.fail(f.offset, `dimension at offset ${f.offset} is empty`);
        return size;
      }));
    } else c.skip(f);
  });
  const dtype = dtypeFromProtoCode(code);
  if (dtype === undefined) {
    c.fail(offset, `tensor data type "${code}" at offset ${offset} is unsupported`);
  }
  if (rank !== shape.length) {
    c.fail(
      offset,
      `tensor type at offset ${offset} declares rank ${rank} but has ${shape.length} dimensions`,
    );
  }
  try {
    checkShape(shape);
  } catch (error) {
    c.fail(
      offset,
      `tensor type at offset ${offset} has shape [${shape}] with too many elements`,
      error,
    );
  }
  return { dtype, shape };
}

/** The raw payload of a `TensorValue`, before its dtype is known. */
type RawTensor =
  | { member: "floats"; values: Float32Array[] }
  | { member: "ints" | "bools"; values: number[] }
  | { member: "strings"; values: string[] }
  | { member: "bytes"; values: Uint8Array };

function readValue(c: BoundedReader, end: number, offset: number): Value {
  let type: TensorType | undefined;
  let raw: RawTensor | undefined;
  let blobOffset: number | undefined;
  const F = FIELD.Value;
  c.fields(end, "Value", (f) => {
    if (f.no === F.type) type = c.message(f, "ValueType", (e) => readValueType(c, e, f.offset));
    else if (f.no === F.immediateValue) {
      raw = c.message(f, "ImmediateValue", (e) => {
        let tensor: RawTensor | undefined;
        c.fields(e, "ImmediateValue", (g) => {
          if (g.no === FIELD.ImmediateValue.tensor) {
            tensor = c.message(g, "TensorValue", (e2) => readTensorValue(c, e2));
          } else if (g.no <= IMMEDIATE_VALUE_MEMBERS) {
            unsupported(c, g, "tuple, list and dictionary values");
          } else c.skip(g);
        });
        return tensor;
      });
      blobOffset = undefined;
    } else if (f.no === F.blobFileValue) {
      blobOffset = c.message(f, "BlobFileValue", (e) => readBlobFileValue(c, e, f.offset));
      raw = undefined;
    } else c.skip(f);
  });
  if (type === undefined) c.fail(offset, `value at offset ${offset} has no type`);
  if (blobOffset !== undefined) {
    const { dtype, shape } = type;
    if (!isBlobDType(dtype)) {
      c.fail(offset, `value at offset ${offset} puts ${dtype} data in weight.bin`);
    }
    return { kind: "blob", dtype, shape, offsetBytes: blobOffset };
  }
  if (raw === undefined) {
    c.fail(offset, `value at offset ${offset} has neither an immediate value nor a blob`);
  }
  return immediateFromRaw(c, offset, type, raw);
}

function readBlobFileValue(c: BoundedReader, end: number, offset: number): number {
  let fileName = "";
  let blobOffset = 0;
  c.fields(end, "BlobFileValue", (f) => {
    if (f.no === FIELD.BlobFileValue.fileName) fileName = c.string(f, "fileName");
    else if (f.no === FIELD.BlobFileValue.offset) blobOffset = c.count(f, "offset");
    else c.skip(f);
  });
  if (fileName !== WEIGHT_FILE_REFERENCE) {
    c.fail(
      offset,
      `blob file "${fileName}" at offset ${offset} is unsupported, expected ` +
        `"${WEIGHT_FILE_REFERENCE}"`,
    );
  }
  return blobOffset;
}

function readTensorValue(c: BoundedReader, end: number): RawTensor | undefined {
  let raw: RawTensor | undefined;
  const F = FIELD.TensorValue;
  c.fields(end, "TensorValue", (f) => {
    const wrapper = (member: string, read: (g: Field) => void) =>
      c.message(
        f,
        member,
        (e) => c.fields(e, member, (g) => g.no === FIELD.Repeated.values ? read(g) : c.skip(g)),
      );
    if (f.no === F.floats) {
      const values: Float32Array[] = [];
      wrapper("floats", (g) => values.push(c.floats(g, "floats")));
      raw = { member: "floats", values };
    } else if (f.no === F.ints) {
      const values: number[] = [];
      wrapper("ints", (g) => c.int32s(g, "ints", (v) => values.push(v)));
      raw = { member: "ints", values };
    } else if (f.no === F.bools) {
      const values: number[] = [];
      wrapper("bools", (g) => c.bools(g, "bools", (v) => values.push(v ? 1 : 0)));
      raw = { member: "bools", values };
    } else if (f.no === F.strings) {
      const values: string[] = [];
      wrapper("strings", (g) => values.push(c.string(g, "string")));
      raw = { member: "strings", values };
    } else if (f.no === F.bytes) {
      let values: Uint8Array = new Uint8Array(0);
      wrapper("bytes", (g) => values = c.bytes(g, "bytes"));
      raw = { member: "bytes", values };
    } else if (f.no <= TENSOR_VALUE_MEMBERS) {
      unsupported(c, f, "64-bit integer and double tensor values");
    } else c.skip(f);
  });
  return raw;
}

/** Which `TensorValue` member carries each dtype, as coremltools writes it. */
const MEMBER: Record<DType, RawTensor["member"]> = {
  fp32: "floats",
  int32: "ints",
  bool: "bools",
  string: "strings",
  fp16: "bytes",
  int8: "bytes",
  uint8: "bytes",
  int4: "bytes",
  uint4: "bytes",
  uint6: "bytes",
};

function immediateFromRaw(
  c: BoundedReader,
  offset: number,
  type: TensorType,
  raw: RawTensor,
): Value {
  const { dtype, shape } = type;
  const where = `immediate ${dtype}[${shape}] value at offset ${offset}`;
  if (raw.member !== MEMBER[dtype]) {
    c.fail(offset, `${where} is stored as ${raw.member}, expected ${MEMBER[dtype]}`);
  }
  const count = checkShape(shape);
  const mismatch = (have: string): never =>
    c.fail(offset, `${where} holds ${have}, expected ${count} elements`);
  switch (raw.member) {
    case "floats": {
      const total = raw.values.reduce((n, a) => n + a.length, 0);
      if (total !== count) mismatch(`${total} floats`);
      const values = new Float32Array(count);
      let at = 0;
      for (const chunk of raw.values) {
        values.set(chunk, at);
        at += chunk.length;
      }
      return { kind: "immediate", ...type, values };
    }
    case "ints":
    case "bools": {
      if (raw.values.length !== count) mismatch(`${raw.values.length} ${raw.member}`);
      const values = dtype === "int32" ? Int32Array.from(raw.values) : Uint8Array.from(raw.values);
      return { kind: "immediate", ...type, values };
    }
    case "strings":
      if (raw.values.length !== count) mismatch(`${raw.values.length} strings`);
      return { kind: "immediate", ...type, values: raw.values };
    case "bytes": {
      const numeric = dtype as Exclude<DType, "string">;
      const expected = storedByteLength(numeric, count);
      if (raw.values.length !== expected) {
        c.fail(
          offset,
          `${where} holds ${raw.values.length} bytes, expected ${expected} (${count} elements of ${
            DTYPE_INFO[dtype].bits
          } bits)`,
        );
      }
      return { kind: "immediate", ...type, values: valuesFromBytes(numeric, raw.values, count) };
    }
  }
}
