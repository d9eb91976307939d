/**
 * Downloads a file whose SHA-256 is known in advance into a cache, so that a native library
 * fetched over the network is loaded only if it is exactly the one recorded. The bytes go to a
 * temporary file beside the destination and are renamed into place only once their hash matches:
 * an interrupted, truncated or tampered download never reaches the cached path. A cached copy is
 * hashed again before each use, so a file damaged in the cache is fetched anew.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { netNeed, readNeed, requirePermissions, writeNeed } from "../permissions.ts";

/** One file to fetch and where to keep it. */
export interface VerifiedDownload {
  /** Where the file is served; redirects are followed. */
  readonly url: URL;
  /** Its SHA-256, in lowercase hexadecimal. */
  readonly sha256: string;
  /** Where the verified file is cached. */
  readonly path: string;
  /** What the file is, for messages, e.g. `the CPU backend library`. */
  readonly what: string;
}

/** A download that failed or did not match its SHA-256; nothing was written to the cache. */
export class NativeDownloadError extends Error {
  /**
   * Builds the message `Cannot download <what> from <url>: <detail>`.
   *
   * @param detail what went wrong
   */
  constructor(download: VerifiedDownload, detail: string, options?: ErrorOptions) {
    super(`Cannot download ${download.what} from ${download.url.href}: ${detail}`, options);
    this.name = "NativeDownloadError";
  }
}

const MAX_REDIRECTS = 5;

function directoryOf(path: string): string {
  return path.replace(/[/\\][^/\\]*$/, "");
}

async function fileSha256(path: string): Promise<string | undefined> {
  try {
    using file = await Deno.open(path);
    const hash = createHash("sha256");
    for await (const chunk of file.readable) hash.update(chunk);
    return hash.digest("hex");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function fetchFollowing(download: VerifiedDownload): Promise<Response> {
  let url = download.url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    await requirePermissions([netNeed(url.host, `download ${download.what} from ${url.host}`)]);
    let response: Response;
    try {
      response = await fetch(url, { redirect: "manual" });
    } catch (error) {
      throw new NativeDownloadError(
        download,
        `the server cannot be reached (${error instanceof Error ? error.message : error}); ` +
          "when offline, put the library in place by one of the other ways",
        { cause: error },
      );
    }
    const location = response.headers.get("location");
    if (response.status < 300 || response.status >= 400 || location === null) return response;
    await response.body?.cancel();
    url = new URL(location, url);
  }
  throw new NativeDownloadError(download, `more than ${MAX_REDIRECTS} redirects`);
}

/** Streams the response into `temporary`, returning the SHA-256 of what was written. */
async function writeHashed(response: Response, temporary: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(temporary, { write: true, createNew: true });
  const writer = file.writable.getWriter();
  for await (const chunk of response.body!) {
    hash.update(chunk);
    await writer.write(chunk);
  }
  await writer.close();
  return hash.digest("hex");
}

/**
 * Returns `download.path` once it holds the file whose SHA-256 is `download.sha256`: the cached
 * copy if it matches, else a fresh download, verified before it is renamed into place. Reading
 * the cache needs `--allow-read` for its folder; downloading also needs `--allow-write` for it and
 * `--allow-net` for the host (each host, when redirected), checked before anything is fetched.
 *
 * @throws {NativeDownloadError} when the server cannot be reached, answers with an error, or
 * sends other bytes than recorded
 */
export async function cachedDownload(download: VerifiedDownload): Promise<string> {
  const directory = directoryOf(download.path);
  await requirePermissions([readNeed(directory, `read ${download.what} from the cache`)]);
  if (await fileSha256(download.path) === download.sha256) return download.path;
  await requirePermissions([writeNeed(directory, `cache ${download.what}`)]);
  const response = await fetchFollowing(download);
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new NativeDownloadError(
      download,
      `the server answered ${response.status} ${response.statusText}`,
    );
  }
  await Deno.mkdir(directory, { recursive: true });
  const temporary = `${download.path}.${crypto.randomUUID()}.part`;
  try {
    const sha256 = await writeHashed(response, temporary).catch((error) => {
      throw new NativeDownloadError(download, `the transfer broke off (${error})`, {
        cause: error,
      });
    });
    if (sha256 !== download.sha256) {
      throw new NativeDownloadError(
        download,
        `its SHA-256 is ${sha256}, but ${download.sha256} is recorded; refusing to use it`,
      );
    }
    await Deno.rename(temporary, download.path);
  } finally {
    // Gone already after the rename; otherwise a partial or refused file that must not linger.
    await Deno.remove(temporary).catch(() => {});
  }
  return download.path;
}
