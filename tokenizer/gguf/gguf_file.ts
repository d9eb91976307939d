/**
 * A GGUF file's vocabulary: read from the header alone, however large the tensors, and kept apart
 * as a GGUF of its `tokenizer.*` metadata only (what a bundle carries).
 *
 * @module
 */

import {
  type ByteSource,
  GgufFormatError,
  type GgufHeader,
  parseGgufHeader,
  readGgufHeader,
  writeGgufMetadata,
} from "../../gguf/mod.ts";
import { TokenizerFormatError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer.ts";
import { ggufTokenizer } from "./gguf_tokenizer.ts";

/** The first four bytes of every GGUF file. */
export const GGUF_MAGIC: Uint8Array = new TextEncoder().encode("GGUF");

/** Whether `bytes` start with {@link GGUF_MAGIC}. */
export function startsWithGgufMagic(bytes: Uint8Array): boolean {
  return GGUF_MAGIC.every((byte, i) => bytes[i] === byte);
}

/** Whether `path` is a regular file that starts like a GGUF (stat first: opening a FIFO blocks). */
export async function isGgufFile(path: string): Promise<boolean> {
  const info = await Deno.stat(path).catch(() => undefined);
  if (!info?.isFile) return false;
  using file = await Deno.open(path, { read: true });
  const head = new Uint8Array(4);
  const read = await file.read(head);
  return read === 4 && startsWithGgufMagic(head);
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

/** The header of the GGUF file at `path`, its format errors as tokenizer errors. */
async function readHeader(path: string | URL, name: string): Promise<GgufHeader> {
  using file = await Deno.open(path, { read: true });
  const { size } = await file.stat();
  try {
    return await readGgufHeader(fileSource(file, name, size));
  } catch (error) {
    throw asTokenizerError(error, name);
  }
}

/** A GGUF format error as the tokenizer error it is here; any other error as it is. */
function asTokenizerError(error: unknown, name: string): unknown {
  return error instanceof GgufFormatError
    ? new TokenizerFormatError(name, error.offset, error.detail)
    : error;
}

/**
 * The tokenizer of the GGUF file at `path`, reading its header only.
 *
 * @throws {TokenizerFormatError} when the file is not a well-formed GGUF or has no vocabulary
 * @throws {UnsupportedTokenizerError} for a tokenizer model or pre-tokenizer not supported
 */
export async function loadGgufTokenizer(path: string | URL, name: string): Promise<Tokenizer> {
  return ggufTokenizer(await readHeader(path, name), name);
}

/**
 * The tokenizer of a whole GGUF file in memory (a vocabulary file, not a model).
 *
 * @throws {TokenizerFormatError} when the bytes are not a well-formed GGUF or hold no vocabulary
 * @throws {UnsupportedTokenizerError} for a tokenizer model or pre-tokenizer not supported
 */
export function parseGgufTokenizer(bytes: Uint8Array, name: string): Tokenizer {
  let header: GgufHeader;
  try {
    header = parseGgufHeader(bytes, name);
  } catch (error) {
    throw asTokenizerError(error, name);
  }
  return ggufTokenizer(header, name);
}

/** A GGUF's vocabulary, apart from its model. */
export interface GgufVocabulary {
  /** A GGUF file of the `tokenizer.*` metadata alone, no tensors. */
  readonly file: Uint8Array<ArrayBuffer>;
  /** The tokenizer that file describes. */
  readonly tokenizer: Tokenizer;
  /** `tokenizer.chat_template`, if the GGUF has one. */
  readonly chatTemplate: string | undefined;
}

/**
 * The vocabulary of the GGUF file at `path` (reading its header only) as a file of its own, or
 * undefined when the GGUF holds none (no `tokenizer.ggml.model`).
 *
 * @throws {TokenizerFormatError} when the file is not a well-formed GGUF or its vocabulary is
 *   malformed
 * @throws {UnsupportedTokenizerError} for a tokenizer model or pre-tokenizer not supported
 */
export async function readGgufVocabulary(
  path: string,
  name: string,
): Promise<GgufVocabulary | undefined> {
  const header = await readHeader(path, name);
  if (!header.metadata.has("tokenizer.ggml.model")) return undefined;
  const file = writeGgufMetadata(
    [...header.metadata].filter(([key]) => key.startsWith("tokenizer.")),
  );
  const template = header.metadata.get("tokenizer.chat_template")?.value;
  return {
    file,
    // Parsed from the written file, so that what is checked is what is kept.
    tokenizer: parseGgufTokenizer(file, name),
    chatTemplate: typeof template === "string" ? template : undefined,
  };
}
