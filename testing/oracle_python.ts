/**
 * The Python that runs the test oracles (coremltools), and a helper to run a script with it.
 * Resolution: `LLAMANE_PYTHON` if set, else the repository's `.venv/bin/python`. When neither
 * exists the caller fails, telling how to create the venv: an oracle test never skips silently.
 *
 * @module
 */

const ROOT = new URL("../", import.meta.url);

/** Thrown when no oracle Python can be found. */
export class OraclePythonMissingError extends Error {
  /** @param message what is missing and how to fix it */
  constructor(message: string) {
    super(message);
    this.name = "OraclePythonMissingError";
  }
}

/**
 * The path of the oracle Python interpreter.
 *
 * @throws {OraclePythonMissingError} when `LLAMANE_PYTHON` names no file, or it is unset and
 * `.venv/bin/python` does not exist
 */
export function oraclePython(): string {
  const fromEnv = Deno.permissions.querySync({ name: "env", variable: "LLAMANE_PYTHON" }).state ===
      "granted"
    ? Deno.env.get("LLAMANE_PYTHON")
    : undefined;
  const venv = new URL(".venv/bin/python", ROOT).pathname;
  const python = fromEnv ?? venv;
  try {
    Deno.statSync(python);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    const source = fromEnv === undefined ? "the repository's venv" : "LLAMANE_PYTHON";
    throw new OraclePythonMissingError(
      `Cannot run the Python test oracles: ${source} has no interpreter at "${python}"; run ` +
        `\`bash scripts/setup_venv.sh\` (or point LLAMANE_PYTHON at a Python with ` +
        `scripts/requirements.txt installed)`,
    );
  }
  return python;
}

/**
 * Runs a Python script of the repository with the oracle Python and returns its stdout.
 *
 * @param script path relative to the repository root, e.g. `scripts/coreml/validate.py`
 * @param args the script's arguments
 * @param input written to the script's stdin, if given
 * @throws {Error} carrying the script's stderr when it exits non-zero
 */
export async function runOracleScript(
  script: string,
  args: readonly string[],
  input?: string,
): Promise<string> {
  const python = oraclePython();
  const path = new URL(script, ROOT).pathname;
  const child = new Deno.Command(python, {
    args: [path, ...args],
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  if (code !== 0) {
    throw new Error(
      `Cannot run oracle "${script}": it exited with status ${code}\n${text.decode(stderr)}`,
    );
  }
  return text.decode(stdout);
}
