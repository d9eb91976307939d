/**
 * Renders one chat template off the main thread, so that a template that never ends can be
 * stopped: the caller terminates this worker when its time is up. It says "ready" first, so
 * that loading it is not counted against the template.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { Environment, Interpreter, parse, tokenize } from "./jinja.ts";

/** Jinja's range(), refusing more than this many numbers instead of filling the memory. */
const MAX_RANGE = 1_000_000;

function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error("range() step must not be zero");
  const count = Math.max(0, Math.ceil((stop - start) / step));
  if (count > MAX_RANGE) throw new Error(`range() of ${count} numbers (at most ${MAX_RANGE})`);
  return Array.from({ length: count }, (_, i) => start + i * step);
}

/** The globals `Template.render` sets up, with the bounded range() in place of the library's. */
const GLOBALS: Readonly<Record<string, unknown>> = {
  false: false,
  true: true,
  none: null,
  False: false,
  True: true,
  None: null,
  raise_exception: (message: string) => {
    throw new Error(message);
  },
  range: boundedRange,
};

function render(source: string, context: Record<string, unknown>): string {
  // transformers renders with trim_blocks and lstrip_blocks, as Template does.
  const program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
  const env = new Environment();
  for (const [name, value] of Object.entries({ ...GLOBALS, ...context })) env.set(name, value);
  return (new Interpreter(env).run(program) as { value: string }).value;
}

self.onmessage = (event: MessageEvent<{ source: string; context: Record<string, unknown> }>) => {
  try {
    self.postMessage({ text: render(event.data.source, event.data.context) });
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
};
self.postMessage({ ready: true });
