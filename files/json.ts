/**
 * JSON from untrusted files, parsed without echoing them: the engine's own messages quote the
 * text they failed on, which would print part of whatever file a hostile name pointed at. The
 * error here gives the byte offset alone.
 *
 * @module
 */

/** Text that is not valid JSON. */
export class JsonSyntaxError extends SyntaxError {
  /** Byte offset of the problem in the UTF-8 text, when the parser reports one. */
  readonly offset: number | undefined;

  /** Builds `is not valid JSON (at byte <offset>)`, a phrase whose subject is the file. */
  constructor(offset: number | undefined) {
    super(`is not valid JSON${offset === undefined ? "" : ` (at byte ${offset})`}`);
    this.name = "JsonSyntaxError";
    this.offset = offset;
  }
}

/**
 * Parses JSON text.
 *
 * @throws {JsonSyntaxError} giving the byte offset of the problem, never the text itself
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    const message = error.message;
    const position = /at position (\d+)/.exec(message)?.[1];
    const offset = position !== undefined
      ? new TextEncoder().encode(text.slice(0, Number(position))).length
      : /end of JSON input/.test(message)
      ? new TextEncoder().encode(text).length
      : undefined;
    throw new JsonSyntaxError(offset);
  }
}
