/**
 * GGUF files as a {@link TensorSource}: the container's header (parsed by `gguf/`) becomes the
 * tensor table, under the file's own tensor names, and each tensor is read lazily; quantized
 * tensors are dequantized to fp32 on read, or handed over as stored by `readStored`.
 *
 * @module
 */

import { GgufFormatError, type GgufHeader, readGgufHeader } from "../gguf/header.ts";

export type { GgufHeader, GgufValue } from "../gguf/header.ts";
import { CheckpointFormatError } from "./errors.ts";
import { LazySource, type StoredTensor } from "./lazy_source.ts";
import type { RandomAccessFile } from "./random_access_file.ts";
import { rowMajorStrides } from "./strided_view.ts";
import type { TensorSource } from "./tensor_source.ts";

/** A GGUF file's tensors, with its header (metadata included). */
export interface GgufCheckpoint extends TensorSource {
  /** The parsed header: version, metadata and tensor table. */
  readonly header: GgufHeader;
}

class GgufSource extends LazySource implements GgufCheckpoint {
  constructor(file: RandomAccessFile, tensors: StoredTensor[], readonly header: GgufHeader) {
    super(file, tensors, "gguf");
  }
}

/**
 * Reads the header of the GGUF file `file` and returns its tensors. Takes ownership of `file`: the
 * returned source closes it, and so does a failure here.
 */
export async function openGgufFile(file: RandomAccessFile): Promise<GgufCheckpoint> {
  try {
    const header = await readGgufHeader(file);
    const tensors: StoredTensor[] = header.tensors.map((tensor) => ({
      info: Object.freeze({ name: tensor.name, dtype: tensor.type, shape: tensor.shape }),
      view: { offset: 0, shape: tensor.shape, strides: rowMajorStrides(tensor.shape) },
      storage: {
        read: (start: number, length: number) =>
          file.readAt(tensor.offset + start, length, `GGUF tensor "${tensor.name}"`),
      },
    }));
    return new GgufSource(file, tensors, header);
  } catch (error) {
    file.close();
    if (error instanceof GgufFormatError) {
      throw new CheckpointFormatError(error.path, error.offset, error.detail);
    }
    throw error;
  }
}
