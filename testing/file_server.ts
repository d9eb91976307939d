/**
 * A static file server on 127.0.0.1 standing in for the network in end-to-end tests: it serves a
 * directory (the repository, as a URL import or a JSR package would see it) with the media types
 * Deno needs to load modules, plus extra files a test adds or replaces.
 *
 * @module
 */

const MEDIA_TYPES: Readonly<Record<string, string>> = {
  ".ts": "application/typescript",
  ".js": "application/javascript",
  ".json": "application/json",
  ".md": "text/markdown",
};

function mediaType(path: string): string {
  const extension = path.match(/\.[^./]+$/)?.[0] ?? "";
  return MEDIA_TYPES[extension] ?? "application/octet-stream";
}

/** A running server; closing it frees the port. */
export interface FileServer extends AsyncDisposable {
  /** The root URL, ending in a slash. */
  readonly url: URL;
  /** Paths requested so far, in order (e.g. to tell a download from a cache hit). */
  readonly requests: readonly string[];
}

/** What to serve besides `root`: URL paths (without the leading slash) mapped to their bytes. */
export type ExtraFiles = ReadonlyMap<string, Uint8Array<ArrayBuffer>>;

/**
 * Serves `root` and `extra` on a free port of 127.0.0.1. `extra` takes precedence, so a test can
 * replace a repository file as a release would.
 */
export function serveFiles(root: string, extra: ExtraFiles = new Map()): FileServer {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname).replace(/^\/+/, "");
      requests.push(path);
      if (path.split("/").includes("..")) return new Response("bad path", { status: 400 });
      const headers = { "content-type": mediaType(path) };
      const bytes = extra.get(path);
      if (bytes !== undefined) return new Response(bytes, { headers });
      try {
        const file = await Deno.open(`${root}/${path}`);
        if (!(await file.stat()).isFile) {
          file.close();
          return new Response("not a file", { status: 404 });
        }
        return new Response(file.readable, { headers });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return {
    url: new URL(`http://127.0.0.1:${server.addr.port}/`),
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** The repository root, as a local path. */
export const REPOSITORY_ROOT: string = decodeURIComponent(new URL("..", import.meta.url).pathname)
  .replace(/\/$/, "");
