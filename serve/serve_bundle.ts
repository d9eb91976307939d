/**
 * Serving a bundle: its manifest, tokenizer and chat template read, its programs loaded on the
 * backend asked for, a server started on them, and the model released when the server stops.
 *
 * @module
 */

import { readBundledChatTemplate, readBundledTokenizer, readManifest } from "../bundle/mod.ts";
import type { BackendOptions } from "../runtime/backend/select.ts";
import { loadModel } from "../runtime/load_model.ts";
import { type RunningServer, type ServerOptions, startServer } from "./server.ts";

/** How to load and serve a bundle. */
export interface BundleServerOptions extends ServerOptions {
  /** Where the model runs. @default auto: Core ML on macOS when its bridge is built, else the CPU */
  readonly backend?: BackendOptions;
  /** The id clients name the model by. @default the bundle directory's name */
  readonly name?: string;
}

/** The name of a bundle directory, its last path segment. */
export function bundleName(bundle: string): string {
  return bundle.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1) || bundle;
}

/**
 * Loads `bundle` and serves it; stopping the server releases the model.
 *
 * @throws {TypeError} when the bundle has no tokenizer
 *
 * @example Serve a bundle on a free port of loopback, ask it, stop it
 * ```ts ignore
 * import { serveBundle } from "@llamane/llamane";
 * const server = await serveBundle("out/kjv.llamane", { port: 0 });
 * const response = await fetch(`${server.url}/v1/completions`, {
 *   method: "POST",
 *   body: JSON.stringify({ model: "kjv.llamane", prompt: "And God said", max_tokens: 20 }),
 * });
 * console.log((await response.json()).choices[0].text);
 * await server.shutdown();
 * ```
 */
export async function serveBundle(
  bundle: string,
  options: BundleServerOptions = {},
): Promise<RunningServer> {
  const manifest = await readManifest(bundle);
  if (manifest.tokenizer === null) {
    throw new TypeError(`Cannot serve ${bundle}: the bundle has no tokenizer`);
  }
  const tokenizer = readBundledTokenizer(bundle, manifest.tokenizer);
  const template = readBundledChatTemplate(bundle, manifest.tokenizer);
  const model = await loadModel(bundle, options.backend ?? {});
  let server: RunningServer;
  try {
    server = startServer(
      { name: options.name ?? bundleName(bundle), model, tokenizer, template },
      options,
    );
  } catch (error) {
    model[Symbol.dispose]();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= server.shutdown().finally(() => model[Symbol.dispose]());
    return stopping;
  };
  return { ...server, shutdown, finished: server.finished.then(shutdown) };
}
