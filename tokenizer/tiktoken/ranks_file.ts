/**
 * Reads a tiktoken ranks file, Llama 3's `tokenizer.model`: one `<base64 token> <rank>` per line.
 * The ranks must number the tokens 0..n-1 with no duplicates (Llama 3 numbers its special tokens
 * from n, so a gap or a repeat would give two meanings to one id), and every single byte must be a
 * token, or byte-level BPE could not spell every text.
 *
 * @module
 */

import { TokenizerFormatError } from "../errors.ts";

/** The mergeable tokens of a ranks file. */
export interface Ranks {
  /** Token bytes by rank, as binary strings (one char U+0000..U+00FF per byte). */
  readonly tokens: readonly string[];
  /** Rank by token bytes (binary string). */
  readonly rankOf: ReadonlyMap<string, number>;
}

const LINE = /^([A-Za-z0-9+/]+={0,2}) ([0-9]{1,10})$/;
const MAX_RANK = 0x7fffffff;

/** Whether the file starts like a ranks file: a base64 token, a space and a rank. */
export function looksLikeRanksFile(bytes: Uint8Array): boolean {
  const head = latin1(bytes.subarray(0, 256));
  const newline = head.indexOf("\n");
  return LINE.test((newline < 0 ? head : head.slice(0, newline)).replace(/\r$/, ""));
}

/**
 * Parses a ranks file.
 *
 * @param path the file name, for error messages
 * @throws {TokenizerFormatError} for a malformed line, bad base64, a duplicate token or rank, a
 *   gap in the ranks or a missing single-byte token
 */
export function parseRanksFile(bytes: Uint8Array, path: string): Ranks {
  const fail = (offset: number, detail: string): never => {
    throw new TokenizerFormatError(path, offset, detail);
  };
  // latin1 keeps one char per byte, so string offsets are file offsets.
  const text = latin1(bytes);
  const rankOf = new Map<string, number>();
  const lineOfRank = new Map<number, number>();
  const lineOfToken = new Map<string, number>();
  let lineNumber = 0;
  for (let start = 0; start < text.length;) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    lineNumber++;
    const line = text.slice(start, end).replace(/\r$/, "");
    const where = `line ${lineNumber} (offset ${start})`;
    if (line !== "") {
      const match = LINE.exec(line);
      if (match === null) {
        fail(start, `invalid ranks file: ${where} is not "<base64 token> <rank>"`);
      }
      const [, base64, rankText] = match!;
      const token = decodeBase64(base64!);
      if (token === undefined) {
        fail(start, `invalid ranks file: bad base64 on ${where}`);
      }
      const rank = Number(rankText);
      if (rank > MAX_RANK) fail(start, `invalid ranks file: rank ${rank} on ${where} is too large`);
      const rankLine = lineOfRank.get(rank);
      if (rankLine !== undefined) {
        fail(
          start,
          `invalid ranks file: duplicate rank ${rank} on ${where}, first on line ${rankLine}`,
        );
      }
      const tokenLine = lineOfToken.get(token!);
      if (tokenLine !== undefined) {
        fail(
          start,
          `invalid ranks file: duplicate token on ${where}, first on line ${tokenLine}`,
        );
      }
      lineOfRank.set(rank, lineNumber);
      lineOfToken.set(token!, lineNumber);
      rankOf.set(token!, rank);
    }
    start = end + 1;
  }
  const count = rankOf.size;
  if (count === 0) fail(0, "invalid ranks file: it holds no tokens");
  const tokens = new Array<string>(count);
  for (const [token, rank] of rankOf) {
    if (rank >= count) {
      let missing = 0;
      while (lineOfRank.has(missing)) missing++;
      fail(
        0,
        `invalid ranks file: ranks must be 0..${count - 1} but rank ${missing} is missing ` +
          `(and line ${lineOfRank.get(rank)} has rank ${rank})`,
      );
    }
    tokens[rank] = token;
  }
  for (let byte = 0; byte < 256; byte++) {
    if (!rankOf.has(String.fromCharCode(byte))) {
      const hex = byte.toString(16).padStart(2, "0");
      fail(0, `invalid ranks file: the single-byte token 0x${hex} is missing; all 256 are needed`);
    }
  }
  return { tokens, rankOf };
}

/** Strict base64 (padding required) to a binary string, or undefined. */
function decodeBase64(base64: string): string | undefined {
  if (base64.length % 4 !== 0 || /=[^=]/.test(base64)) return undefined;
  try {
    return atob(base64);
  } catch {
    return undefined;
  }
}

/** Bytes to a binary string, one char per byte. */
export function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}
