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
