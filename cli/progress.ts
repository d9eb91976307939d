/**
 * A one-line progress display on stderr for long work: rewritten in place on a terminal, throttled
 * to a few updates a second, silent when quiet or when stderr is not a terminal.
 *
 * @module
 */

const encoder = new TextEncoder();

/** A status line that updates in place. */
export class ProgressLine {
  readonly #enabled: boolean;
  readonly #started = performance.now();
  #lastDraw = 0;
  #drawn = false;

  constructor(quiet = false) {
    this.#enabled = !quiet && Deno.stderr.isTerminal();
  }

  /** Seconds since the line was created. */
  elapsedSeconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  /** Shows `text`, at most ten times a second. */
  update(text: string): void {
    const now = performance.now();
    if (!this.#enabled || now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    this.#drawn = true;
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${text}`));
  }

  /** Clears the line. */
  done(): void {
    if (this.#drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
  }
}
