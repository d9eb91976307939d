/**
 * Reading only the header of a GGUF file, however large its tensors, to get its vocabulary.
 *
 * @module
 */

import { type ByteSource, GgufFormatError, readGgufHeader } from "../../gguf/mod.ts";
import { TokenizerFormatError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer.ts";
import { ggufTokenizer } from "./gguf_tokenizer.ts";

/** The first four bytes of every GGUF file. */
export const GGUF_MAGIC: Uint8Array = new TextEncoder().encode("GGUF");

/** Whether `bytes` start with {@link GGUF_MAGIC}. */
export function startsWithGgufMagic(bytes: Uint8Array): boolean {
  return GGUF_MAGIC.every((byte, i) => bytes[i] === byte);
}

/** Positioned reads of an open file. */
function fileSource(file: Deno.FsFile, path: string, size: number): ByteSource {
  return {
    path,
    size,
    async readAt(offset: number, length: number, what: string) {
      if (offset + length > size) {
        throw new GgufFormatError(path, offset, `the ${what} runs past the end of the file`);
      }
      const bytes = new Uint8Array(length);
      await file.seek(offset, Deno.SeekMode.Start);
      for (let done = 0; done < length;) {
        const read = await file.read(bytes.subarray(done));
        if (read === null) {
          throw new GgufFormatError(path, offset + done, `the file ended inside the ${what}`);
        }
        done += read;
      }
      return bytes;
    },
  };
}

/**
 * The tokenizer of the GGUF file at `path`, reading its header only.
 *
 * @throws {TokenizerFormatError} when the file is not a well-formed GGUF or has no vocabulary
 * @throws {UnsupportedTokenizerError} for a tokenizer model or pre-tokenizer not supported
 */
export async function loadGgufTokenizer(path: string | URL, name: string): Promise<Tokenizer> {
  using file = await Deno.open(path, { read: true });
  const { size } = await file.stat();
  try {
    return ggufTokenizer(await readGgufHeader(fileSource(file, name, size)), name);
  } catch (error) {
    if (error instanceof GgufFormatError) {
      throw new TokenizerFormatError(name, error.offset, error.detail);
    }
    throw error;
  }
}
