/**
 * Field numbers and enum values of the parts of `CoreML.Specification` (Model.proto,
 * FeatureTypes.proto, MIL.proto) that llamane reads and writes, transcribed from the format
 * brief (docs/reference/coreml-format.md, section 2). The writer and reader share this one table.
 *
 * @module
 */

import type { FeatureDType } from "./model.ts";

/** Field numbers, by message. `MapEntry` is the implicit message of every `map<K, V>`. */
export const FIELD = {
  Model: { specificationVersion: 1, description: 2, mlProgram: 502 },
  ModelDescription: {
    input: 1,
    output: 10,
    state: 13,
    functions: 20,
    defaultFunctionName: 21,
    metadata: 100,
  },
  FunctionDescription: { name: 1, input: 2, output: 3, state: 6 },
  FeatureDescription: { name: 1, shortDescription: 2, type: 3 },
  FeatureType: { multiArrayType: 5 },
  ArrayFeatureType: { shape: 1, dataType: 2, enumeratedShapes: 21, shapeRange: 31 },
  Metadata: { shortDescription: 1, versionString: 2, author: 3, license: 4, userDefined: 100 },
  MapEntry: { key: 1, value: 2 },
  Program: { version: 1, functions: 2 },
  Function: { inputs: 1, opset: 2, blockSpecializations: 3 },
  Block: { inputs: 1, outputs: 2, operations: 3 },
  Operation: { type: 1, inputs: 2, outputs: 3, blocks: 4, attributes: 5 },
  Argument: { arguments: 1 },
  Binding: { name: 1, value: 2 },
  NamedValueType: { name: 1, type: 2 },
  ValueType: { tensorType: 1 },
  TensorType: { dataType: 1, rank: 2, dimensions: 3 },
  Dimension: { constant: 1, unknown: 2 },
  ConstantDimension: { size: 1 },
  Value: { type: 2, immediateValue: 3, blobFileValue: 5 },
  ImmediateValue: { tensor: 1 },
  BlobFileValue: { fileName: 1, offset: 2 },
  TensorValue: { floats: 1, ints: 2, bools: 3, strings: 4, bytes: 7 },
  /** Every `TensorValue.Repeated*` wrapper keeps its payload in field 1. */
  Repeated: { values: 1 },
} as const;

/** The `ArrayDataType` enum of FeatureTypes.proto for the dtypes a feature may have. */
export const ARRAY_DATA_TYPE: Readonly<Record<FeatureDType, number>> = {
  fp16: 0x10010,
  fp32: 0x10020,
  int32: 0x20020,
};

/** The only `Program.version` there is. */
export const PROGRAM_VERSION = 1;
