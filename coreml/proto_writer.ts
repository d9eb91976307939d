/**
 * Encodes a {@link Model} as model.mlmodel (a `CoreML.Specification.Model` protobuf) with the
 * wire-level writer of `@bufbuild/protobuf`. Each value is encoded the way coremltools encodes it
 * (format brief section 2.3): fp16, int8, uint8 and the packed 4-bit types as `bytes`, fp32 as
 * packed floats, int32 and bool as packed varints, every op carrying a `name` attribute.
 *
 * @module
 */

import { BinaryWriter, WireType } from "../protobuf/wire.ts";
import { DTYPE_INFO } from "./dtype.ts";
import {
  type Binding,
  type MilFunction,
  type NamedValueType,
  type Operation,
  type Program,
  type Value,
  WEIGHT_FILE_REFERENCE,
} from "./mil.ts";
import type { FeatureDescription, Metadata, Model, ModelDescription } from "./model.ts";
import { ARRAY_DATA_TYPE, FIELD, PROGRAM_VERSION } from "./proto_fields.ts";
import { type TensorType, valuesToBytes } from "./tensor.ts";
import { validateModel } from "./validate.ts";

/**
 * Validates `model` and encodes it as the bytes of model.mlmodel. The output depends only on
 * `model`: maps are written in insertion order.
 *
 * @throws {MilProgramError} or {TensorShapeError} when the model fails validation
 */
export function encodeModel(model: Model): Uint8Array {
  validateModel(model);
  const w = new BinaryWriter();
  w.tag(FIELD.Model.specificationVersion, WireType.Varint).int32(model.specificationVersion);
  message(w, FIELD.Model.description, () => writeDescription(w, model.description));
  message(w, FIELD.Model.mlProgram, () => writeProgram(w, model.program));
  return w.finish();
}

function message(w: BinaryWriter, field: number, body: () => void): void {
  w.tag(field, WireType.LengthDelimited).fork();
  body();
  w.join();
}

function string(w: BinaryWriter, field: number, value: string): void {
  if (value !== "") w.tag(field, WireType.LengthDelimited).string(value);
}

function mapEntry(w: BinaryWriter, field: number, key: string, value: () => void): void {
  message(w, field, () => {
    string(w, FIELD.MapEntry.key, key);
    message(w, FIELD.MapEntry.value, value);
  });
}

// --- ModelDescription ---------------------------------------------------------------------------

function writeDescription(w: BinaryWriter, d: ModelDescription): void {
  const F = FIELD.ModelDescription;
  for (const f of d.inputs) message(w, F.input, () => writeFeature(w, f));
  for (const f of d.outputs) message(w, F.output, () => writeFeature(w, f));
  for (const fn of d.functions) {
    message(w, F.functions, () => {
      string(w, FIELD.FunctionDescription.name, fn.name);
      for (const f of fn.inputs) {
        message(w, FIELD.FunctionDescription.input, () => writeFeature(w, f));
      }
      for (const f of fn.outputs) {
        message(w, FIELD.FunctionDescription.output, () => writeFeature(w, f));
      }
    });
  }
  string(w, F.defaultFunctionName, d.defaultFunctionName);
  const m = d.metadata;
  const hasMetadata = m.shortDescription !== "" || m.versionString !== "" || m.author !== "" ||
    m.license !== "" || m.userDefined.size > 0;
  if (hasMetadata) message(w, F.metadata, () => writeMetadata(w, m));
}

function writeFeature(w: BinaryWriter, f: FeatureDescription): void {
  string(w, FIELD.FeatureDescription.name, f.name);
  string(w, FIELD.FeatureDescription.shortDescription, f.shortDescription);
  message(w, FIELD.FeatureDescription.type, () => {
    message(w, FIELD.FeatureType.multiArrayType, () => {
      w.tag(FIELD.ArrayFeatureType.shape, WireType.LengthDelimited).fork();
      for (const dim of f.shape) w.int64(dim);
      w.join();
      w.tag(FIELD.ArrayFeatureType.dataType, WireType.Varint).int32(ARRAY_DATA_TYPE[f.dtype]);
    });
  });
}

function writeMetadata(w: BinaryWriter, m: Metadata): void {
  const F = FIELD.Metadata;
  string(w, F.shortDescription, m.shortDescription);
  string(w, F.versionString, m.versionString);
  string(w, F.author, m.author);
  string(w, F.license, m.license);
  for (const [key, value] of m.userDefined) {
    message(w, F.userDefined, () => {
      string(w, FIELD.MapEntry.key, key);
      string(w, FIELD.MapEntry.value, value);
    });
  }
}

// --- MIL ----------------------------------------------------------------------------------------

function writeProgram(w: BinaryWriter, program: Program): void {
  w.tag(FIELD.Program.version, WireType.Varint).int64(PROGRAM_VERSION);
  for (const [name, fn] of program.functions) {
    mapEntry(w, FIELD.Program.functions, name, () => writeFunction(w, fn));
  }
}

function writeFunction(w: BinaryWriter, fn: MilFunction): void {
  for (const input of fn.inputs) message(w, FIELD.Function.inputs, () => writeNamedType(w, input));
  string(w, FIELD.Function.opset, fn.opset);
  mapEntry(w, FIELD.Function.blockSpecializations, fn.opset, () => {
    for (const output of fn.block.outputs) string(w, FIELD.Block.outputs, output);
    for (const op of fn.block.operations) message(w, FIELD.Block.operations, () => writeOp(w, op));
  });
}

function writeOp(w: BinaryWriter, op: Operation): void {
  const F = FIELD.Operation;
  string(w, F.type, op.type);
  for (const [param, bindings] of op.inputs) {
    mapEntry(w, F.inputs, param, () => {
      for (const b of bindings) message(w, FIELD.Argument.arguments, () => writeBinding(w, b));
    });
  }
  for (const output of op.outputs) message(w, F.outputs, () => writeNamedType(w, output));
  mapEntry(w, F.attributes, "name", () => {
    writeValue(w, { kind: "immediate", dtype: "string", shape: [], values: [op.name] });
  });
  for (const [key, value] of op.attributes) {
    mapEntry(w, F.attributes, key, () => writeValue(w, value));
  }
}

function writeBinding(w: BinaryWriter, b: Binding): void {
  if (typeof b === "string") w.tag(FIELD.Binding.name, WireType.LengthDelimited).string(b);
  else message(w, FIELD.Binding.value, () => writeValue(w, b));
}

function writeNamedType(w: BinaryWriter, v: NamedValueType): void {
  string(w, FIELD.NamedValueType.name, v.name);
  message(w, FIELD.NamedValueType.type, () => writeValueType(w, v.type));
}

function writeValueType(w: BinaryWriter, type: TensorType): void {
  message(w, FIELD.ValueType.tensorType, () => {
    const F = FIELD.TensorType;
    w.tag(F.dataType, WireType.Varint).int32(DTYPE_INFO[type.dtype].protoCode);
    if (type.shape.length > 0) w.tag(F.rank, WireType.Varint).int64(type.shape.length);
    for (const size of type.shape) {
      message(w, F.dimensions, () => {
        message(w, FIELD.Dimension.constant, () => {
          if (size !== 0) w.tag(FIELD.ConstantDimension.size, WireType.Varint).uint64(size);
        });
      });
    }
  });
}

function writeValue(w: BinaryWriter, value: Value): void {
  message(w, FIELD.Value.type, () => writeValueType(w, value));
  if (value.kind === "blob") {
    message(w, FIELD.Value.blobFileValue, () => {
      string(w, FIELD.BlobFileValue.fileName, WEIGHT_FILE_REFERENCE);
      w.tag(FIELD.BlobFileValue.offset, WireType.Varint).uint64(value.offsetBytes);
    });
    return;
  }
  message(w, FIELD.Value.immediateValue, () => {
    message(w, FIELD.ImmediateValue.tensor, () => writeTensorValue(w, value));
  });
}

/** Writes the `TensorValue` oneof member coremltools uses for the value's dtype. */
function writeTensorValue(w: BinaryWriter, value: Extract<Value, { kind: "immediate" }>): void {
  const F = FIELD.TensorValue;
  const payload = FIELD.Repeated.values;
  const { dtype, values } = value;
  switch (dtype) {
    case "fp32":
      // A packed repeated float is exactly the little-endian floats behind a length prefix.
      message(w, F.floats, () => {
        if (values.length > 0) {
          w.tag(payload, WireType.LengthDelimited).bytes(
            valuesToBytes(dtype, values as Float32Array),
          );
        }
      });
      return;
    case "int32":
    case "bool":
      message(w, dtype === "int32" ? F.ints : F.bools, () => {
        if (values.length === 0) return;
        w.tag(payload, WireType.LengthDelimited).fork();
        for (const v of values as Int32Array | Uint8Array) w.int32(v);
        w.join();
      });
      return;
    case "string":
      message(w, F.strings, () => {
        for (const s of values as readonly string[]) {
          w.tag(payload, WireType.LengthDelimited).string(s);
        }
      });
      return;
    default:
      message(w, F.bytes, () => {
        const bytes = valuesToBytes(dtype, values as Exclude<typeof values, readonly string[]>);
        if (bytes.length > 0) w.tag(payload, WireType.LengthDelimited).bytes(bytes);
      });
  }
}
