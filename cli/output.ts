/**
 * Text to standard output, whole: a write may take only part of its bytes (a signal such as
 * Ctrl-C's can interrupt it), and the rest of a cut UTF-8 sequence would reach the terminal as a
 * replacement character.
 *
 * @module
 */

/** What {@link writeText} writes to: `Deno.stdout`, or a stand-in. */
export interface ByteSink {
  /** Writes some of `bytes` (at least one), resolving to how many. */
  write(bytes: Uint8Array): Promise<number>;
}

const encoder = new TextEncoder();

/** Writes all of `text` as UTF-8, writing again after a partial write until none is left. */
export async function writeText(text: string, sink: ByteSink = Deno.stdout): Promise<void> {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(await sink.write(bytes));
}
