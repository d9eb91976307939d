/**
 * The test the native-library finders share: is there a file we may read at a path?
 *
 * @module
 */

/** Whether `path` is a file; a denied read permission counts as absent. */
export async function isReadableFile(path: string): Promise<boolean> {
  const status = await Deno.permissions.query({ name: "read", path });
  if (status.state !== "granted") return false;
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * The places a finder looked, for its error: each path, and for one that may not be read, the
 * flag that would let the finder see it (a library that exists but is not readable is reported
 * as such, not as missing).
 */
export async function describeCandidates(paths: readonly string[]): Promise<string> {
  const described = await Promise.all(paths.map(async (path) => {
    const status = await Deno.permissions.query({ name: "read", path });
    return status.state === "granted"
      ? `"${path}" (no such file)`
      : `"${path}" (not readable: run with --allow-read=${path})`;
  }));
  return `looked at ${described.join(", ")}`;
}
