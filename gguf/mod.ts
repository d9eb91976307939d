/**
 * The GGUF container, llama.cpp's model file: metadata and tensor table, read and checked without
 * reading any tensor data. `checkpoint/` reads the tensors; the metadata (architecture,
 * hyperparameters, vocabulary) is there for whoever needs it.
 *
 * @module
 */

export {
  type ByteSource,
  GgufFormatError,
  type GgufHeader,
  type GgufMetadataEntry,
  type GgufTensorInfo,
  type GgufValue,
  MAX_DIMENSIONS,
  MAX_HEADER_BYTES,
  metadataValue,
  parseGgufHeader,
  readGgufHeader,
} from "./header.ts";
export { writeGgufMetadata } from "./writer.ts";
export { type GgmlType, type GgmlTypeLayout, SUPPORTED_GGML_TYPES } from "./ggml_types.ts";
