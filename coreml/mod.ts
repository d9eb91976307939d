/**
 * Core ML files for llamane: an in-memory MIL program IR and a builder for it, the
 * model.mlmodel protobuf writer and reader, weight.bin blob storage, and `.mlpackage`
 * directories. The reader is safe on hostile input and returns the IR the writer takes, so the
 * CPU backend loads exactly what the exporter wrote.
 *
 * @example Export a tiny program and read it back
 * ```ts
 * import assert from "node:assert";
 * import { PackageWriter, ProgramBuilder, readPackage, scalar, tensor } from "./mod.ts";
 *
 * const path = `${await Deno.makeTempDir()}/Tiny.mlpackage`;
 * using pkg = PackageWriter.create(path);
 * const program = new ProgramBuilder({ weights: pkg.weights });
 * const main = program.function("main");
 * const x = main.input("x", { dtype: "fp16", shape: [1, 16] });
 * const w = main.const("w", tensor("fp16", [4, 16], new Array(64).fill(0.25)));
 * const y = main.op("linear", { x, weight: w }, { dtype: "fp16", shape: [1, 4] }, { name: "y" });
 * main.output(main.op("softmax", { x: y, axis: scalar("int32", -1) }, y.type, { name: "p" }));
 * pkg.finish(program.build({ metadata: { author: "llamane" } }));
 *
 * const { model } = readPackage(path);
 * assert.strictEqual(model.description.outputs[0]?.name, "p");
 * ```
 *
 * @module
 */

export {
  BLOB_ALIGNMENT,
  BLOB_HEADER_BYTES,
  BLOB_METADATA_BYTES,
  BLOB_SENTINEL,
  BLOB_STORAGE_VERSION,
  type BlobRecord,
  BlobStorageReader,
  BlobStorageWriter,
} from "./blob_storage.ts";
export {
  type BlobSink,
  type BuildOptions,
  FunctionBuilder,
  MIN_BLOB_ELEMENTS,
  type OpInput,
  type OpOptions,
  ProgramBuilder,
  Var,
} from "./builder.ts";
export {
  type BlobDType,
  type DType,
  DTYPE_INFO,
  dtypeFromBlobCode,
  dtypeFromProtoCode,
  type DTypeInfo,
  DTYPES,
  type DTypeValues,
  type FloatDType,
  isBlobDType,
  isSubByte,
  isValuesOf,
  type TensorValues,
} from "./dtype.ts";
export { CoremlFormatError, MilProgramError, TensorShapeError } from "./errors.ts";
export { checkIdentifier, RESERVED_WORDS } from "./identifier.ts";
export {
  type Binding,
  type BlobValue,
  type Block,
  type ImmediateValue,
  type MilFunction,
  type NamedValueType,
  type Operation,
  OPSET,
  type Program,
  type Value,
  WEIGHT_FILE_REFERENCE,
} from "./mil.ts";
export {
  describeFunction,
  EMPTY_METADATA,
  type FeatureDescription,
  type FeatureDType,
  type FunctionDescription,
  type Metadata,
  type Model,
  type ModelDescription,
  SPECIFICATION_VERSION,
} from "./model.ts";
export {
  FILE_FORMAT_VERSION,
  type ManifestItem,
  MODEL_ITEM,
  type PackageContents,
  PackageWriter,
  readPackage,
  WEIGHTS_ITEM,
} from "./package.ts";
export { decodeModel } from "./proto_reader.ts";
export { encodeModel } from "./proto_writer.ts";
export {
  checkShape,
  checkTensor,
  float16Bits,
  float16Values,
  formatTensorType,
  sameTensorType,
  scalar,
  storedByteLength,
  type Tensor,
  tensor,
  type TensorType,
  tensorType,
  valuesFromBytes,
  valuesToBytes,
} from "./tensor.ts";
export { validateModel, validateProgram } from "./validate.ts";
