/**
 * The King James model shipped with llamane (models/kjv-tiny), found relative to this module so
 * that it works from any working directory: read in place from a clone, a local copy of the
 * package or a compiled binary, and downloaded from beside this module when it was imported over
 * the network (a URL, JSR).
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { netNeed, readNeed, requirePermissions } from "../permissions.ts";

/** Local paths of the embedded model's files, as `exportModel` takes them. */
export interface EmbeddedModel extends AsyncDisposable {
  /** The `.pth` state dict. */
  readonly checkpoint: string;
  /** Meta's `params.json`. */
  readonly params: string;
  /** The SentencePiece `tokenizer.model`, beside the checkpoint where the exporter looks. */
  readonly tokenizer: string;
}

const FILES = ["consolidated.00.pth", "params.json", "tokenizer.model"] as const;

const MODEL_URL = new URL("./kjv-tiny/", import.meta.url);

function filesIn(directory: string, dispose: () => Promise<void>): EmbeddedModel {
  return {
    checkpoint: `${directory}/consolidated.00.pth`,
    params: `${directory}/params.json`,
    tokenizer: `${directory}/tokenizer.model`,
    [Symbol.asyncDispose]: dispose,
  };
}

async function download(name: string, directory: string): Promise<void> {
  const url = new URL(name, MODEL_URL);
  const fail = (detail: string, cause?: unknown) =>
    new Error(`Cannot download the embedded model's ${name} from ${url.href}: ${detail}`, {
      cause,
    });
  const response = await fetch(url).catch((error) => {
    throw fail(String(error), error);
  });
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw fail(`the server answered ${response.status} ${response.statusText}`);
  }
  await Deno.writeFile(`${directory}/${name}`, response.body);
}

/**
 * The embedded model's files as local paths. From a local copy of llamane they are read where
 * they are, and disposing does nothing; when this module was loaded over the network, the three
 * files (7.9 MB) are downloaded into a new temporary directory, which disposing removes. Checks up
 * front `--allow-read` for the model folder, or `--allow-net` for its host (the temporary
 * directory needs `--allow-write` for the system's temporary folder).
 *
 * @example Export it from anywhere
 * ```ts ignore
 * import { embeddedModel, exportModel } from "@llamane/llamane";
 *
 * await using model = await embeddedModel();
 * await exportModel({ checkpoint: model.checkpoint, params: model.params, output: "kjv.llamane" });
 * ```
 */
export async function embeddedModel(): Promise<EmbeddedModel> {
  if (MODEL_URL.protocol === "file:") {
    const local = fileURLToPath(MODEL_URL).replace(/[/\\]$/, "");
    await requirePermissions([readNeed(local, "read the embedded model")]);
    return filesIn(local, async () => {});
  }
  await requirePermissions([netNeed(MODEL_URL.host, "download the embedded model")]);
  const directory = await Deno.makeTempDir({ prefix: "llamane-kjv-tiny-" });
  const remove = () => Deno.remove(directory, { recursive: true });
  try {
    await Promise.all(FILES.map((name) => download(name, directory)));
  } catch (error) {
    await remove();
    throw error;
  }
  return filesIn(directory, remove);
}
