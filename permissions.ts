/**
 * Up-front permission checks. Every entry point states exactly which paths it reads, writes or
 * loads as a native library, and fails before doing any work with an error that names the flag
 * to add, rather than failing halfway with Deno's generic message.
 *
 * @module
 */

/** Thrown when a needed Deno permission is not granted; `flag` is what to pass to `deno run`. */
export class MissingPermissionError extends Deno.errors.NotCapable {
  /** The command-line flag that grants the permission, e.g. `--allow-read=model.llamane`. */
  readonly flag: string;

  /**
   * Builds the message `Cannot <what>: permission denied, run with <flag>`.
   *
   * @param what what the permission is needed for, e.g. `read the checkpoint`
   */
  constructor(what: string, flag: string) {
    super(`Cannot ${what}: permission denied, run with ${flag}`);
    this.name = "MissingPermissionError";
    this.flag = flag;
  }
}

/** One permission an entry point needs, and why. */
export interface PermissionNeed {
  readonly descriptor:
    | Deno.ReadPermissionDescriptor
    | Deno.WritePermissionDescriptor
    | Deno.FfiPermissionDescriptor
    | { readonly name: "net"; readonly host: string };
  /** Why it is needed, completing "Cannot ...", e.g. `read the checkpoint`. */
  readonly what: string;
}

/** Read access to `path`. */
export function readNeed(path: string | URL, what: string): PermissionNeed {
  return { descriptor: { name: "read", path }, what };
}

/** Write access to `path`. */
export function writeNeed(path: string | URL, what: string): PermissionNeed {
  return { descriptor: { name: "write", path }, what };
}

/** Permission to load the native library at `path`. */
export function ffiNeed(path: string | URL, what: string): PermissionNeed {
  return { descriptor: { name: "ffi", path }, what };
}

/** Network access to `host` (a host name, with `:port` when not the default). */
export function netNeed(host: string, what: string): PermissionNeed {
  return { descriptor: { name: "net", host }, what };
}

/** The flag that grants a need, e.g. `--allow-read=model.llamane`. */
function flagOf({ descriptor }: PermissionNeed): string {
  const value = descriptor.name === "net" ? descriptor.host : String(descriptor.path);
  return `--allow-${descriptor.name}=${value}`;
}

async function granted(need: PermissionNeed): Promise<boolean> {
  return (await Deno.permissions.query(need.descriptor)).state === "granted";
}

/**
 * Checks every need without prompting and throws {@link MissingPermissionError} for the first one
 * not granted.
 */
export async function requirePermissions(needs: readonly PermissionNeed[]): Promise<void> {
  for (const need of needs) {
    if (!await granted(need)) throw new MissingPermissionError(need.what, flagOf(need));
  }
}

/** The flags of the needs not granted, without prompting, to name them all at once. */
export async function missingFlags(needs: readonly PermissionNeed[]): Promise<string[]> {
  const flags: string[] = [];
  for (const need of needs) if (!await granted(need)) flags.push(flagOf(need));
  return flags;
}
