import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cachedDownload, NativeDownloadError, type VerifiedDownload } from "./native_download.ts";
import { serveFiles } from "../testing/file_server.ts";

const LIBRARY = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 2654435761) >>> 24);
// Node's hash, not the module's own code path, gives the expected value.
const LIBRARY_SHA256 = createHash("sha256").update(LIBRARY).digest("hex");

async function withCache(run: (cacheDir: string) => Promise<void>): Promise<void> {
  const cacheDir = await Deno.makeTempDir();
  try {
    await run(cacheDir);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
}

function request(url: URL, cacheDir: string): VerifiedDownload {
  return {
    url,
    sha256: LIBRARY_SHA256,
    path: `${cacheDir}/0.1.0/libtest.so`,
    what: "the test library",
  };
}

async function listing(directory: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(directory))).map((e) => e.name).sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

const EMPTY = await Deno.makeTempDir();

Deno.test("cachedDownload() downloads and verifies once, then serves the cache", async () => {
  await using server = serveFiles(EMPTY, new Map([["v0.1.0/libtest.so", LIBRARY]]));
  await withCache(async (cacheDir) => {
    const download = request(new URL("v0.1.0/libtest.so", server.url), cacheDir);
    assert.equal(await cachedDownload(download), download.path);
    assert.deepEqual(await Deno.readFile(download.path), LIBRARY);
    assert.equal(await cachedDownload(download), download.path);
    assert.deepEqual(server.requests, ["v0.1.0/libtest.so"]);
    assert.deepEqual(await listing(`${cacheDir}/0.1.0`), ["libtest.so"]);
  });
});

Deno.test("cachedDownload() refuses a tampered file and caches nothing", async () => {
  const tampered = LIBRARY.slice();
  tampered[1234]! ^= 1;
  await using server = serveFiles(EMPTY, new Map([["libtest.so", tampered]]));
  await withCache(async (cacheDir) => {
    const download = request(new URL("libtest.so", server.url), cacheDir);
    const error = await cachedDownload(download).catch((e) => e);
    assert.ok(error instanceof NativeDownloadError);
    assert.match(
      error.message,
      new RegExp(`but ${LIBRARY_SHA256} is recorded; refusing to use it`),
    );
    assert.deepEqual(await listing(`${cacheDir}/0.1.0`), []);
  });
});

Deno.test("cachedDownload() replaces a cached copy that no longer matches", async () => {
  await using server = serveFiles(EMPTY, new Map([["libtest.so", LIBRARY]]));
  await withCache(async (cacheDir) => {
    const download = request(new URL("libtest.so", server.url), cacheDir);
    await Deno.mkdir(`${cacheDir}/0.1.0`);
    await Deno.writeFile(download.path, LIBRARY.subarray(0, 1000));
    await cachedDownload(download);
    assert.deepEqual(await Deno.readFile(download.path), LIBRARY);
    assert.deepEqual(server.requests, ["libtest.so"]);
  });
});

/** A server that promises the whole library, sends a third of it and hangs up. */
async function serveTruncated(listener: Deno.TcpListener): Promise<void> {
  for await (const connection of listener) {
    await connection.read(new Uint8Array(4096));
    const head = `HTTP/1.1 200 OK\r\ncontent-length: ${LIBRARY.length}\r\n\r\n`;
    await connection.write(new TextEncoder().encode(head));
    await connection.write(LIBRARY.subarray(0, 100_000));
    connection.close();
  }
}

Deno.test("cachedDownload() keeps nothing of a transfer that breaks off", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = serveTruncated(listener);
  try {
    await withCache(async (cacheDir) => {
      const url = new URL(`http://127.0.0.1:${listener.addr.port}/libtest.so`);
      await assert.rejects(
        cachedDownload(request(url, cacheDir)),
        /the test library .*: the transfer broke off/,
      );
      assert.deepEqual(await listing(`${cacheDir}/0.1.0`), []);
    });
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("cachedDownload() follows redirects", async () => {
  await using files = serveFiles(EMPTY, new Map([["assets/libtest.so", LIBRARY]]));
  const redirector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => Response.redirect(new URL("assets/libtest.so", files.url), 302),
  );
  try {
    await withCache(async (cacheDir) => {
      const url = new URL(`http://127.0.0.1:${redirector.addr.port}/v0.1.0/libtest.so`);
      const download = request(url, cacheDir);
      await cachedDownload(download);
      assert.deepEqual(await Deno.readFile(download.path), LIBRARY);
    });
  } finally {
    await redirector.shutdown();
  }
});

Deno.test("cachedDownload() reports a missing asset with the server's status", async () => {
  await using server = serveFiles(EMPTY);
  await withCache(async (cacheDir) => {
    const download = request(new URL("v9.9.9/libtest.so", server.url), cacheDir);
    await assert.rejects(
      cachedDownload(download),
      new RegExp(`Cannot download the test library from ${download.url.href}: .*404 Not Found`),
    );
    assert.deepEqual(await listing(`${cacheDir}/0.1.0`), []);
  });
});

Deno.test("cachedDownload() says when the server cannot be reached", async () => {
  const server = serveFiles(EMPTY);
  const url = new URL("libtest.so", server.url);
  await server[Symbol.asyncDispose]();
  await withCache(async (cacheDir) => {
    await assert.rejects(
      cachedDownload(request(url, cacheDir)),
      /the server cannot be reached .*; when offline, put the library in place/,
    );
  });
});
