/**
 * The per-user cache directory of each operating system, where downloaded native libraries are
 * kept: `$XDG_CACHE_HOME` or `~/.cache` on Linux and the BSDs, `~/Library/Caches` on macOS,
 * `%LOCALAPPDATA%` on Windows.
 *
 * @module
 */

/** The environment variables that locate the cache directory on `os`, all of which are read. */
export function cacheDirVariables(os: typeof Deno.build.os = Deno.build.os): string[] {
  switch (os) {
    case "darwin":
      return ["HOME"];
    case "windows":
      return ["LOCALAPPDATA"];
    default:
      return ["XDG_CACHE_HOME", "HOME"];
  }
}

/** The cache directory, or why it is unknown: the `--allow-env` flag to add, or what is unset. */
export type UserCacheDir = { readonly path: string } | { readonly unknown: string };

function read(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === "" ? undefined : value;
}

/**
 * Finds the per-user cache directory. Every variable of {@link cacheDirVariables} must be
 * readable, so that a set `XDG_CACHE_HOME` is never passed over for lack of permission.
 */
export async function userCacheDir(
  os: typeof Deno.build.os = Deno.build.os,
): Promise<UserCacheDir> {
  const variables = cacheDirVariables(os);
  for (const variable of variables) {
    const status = await Deno.permissions.query({ name: "env", variable });
    if (status.state !== "granted") {
      return { unknown: `run with --allow-env=${variables.join(",")} to locate the user cache` };
    }
  }
  const home = read("HOME");
  switch (os) {
    case "darwin":
      if (home !== undefined) return { path: `${home}/Library/Caches` };
      break;
    case "windows": {
      const local = read("LOCALAPPDATA");
      if (local !== undefined) return { path: local };
      break;
    }
    default: {
      const xdg = read("XDG_CACHE_HOME");
      if (xdg !== undefined) return { path: xdg };
      if (home !== undefined) return { path: `${home}/.cache` };
    }
  }
  return { unknown: `set ${variables.join(" or ")} to locate the user cache` };
}
