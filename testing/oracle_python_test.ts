import { ok, rejects, strictEqual, throws } from "node:assert";
import { oraclePython, OraclePythonMissingError, runOracleScript } from "./oracle_python.ts";

function withPython(value: string | undefined, body: () => Promise<void> | void) {
  return async () => {
    const saved = Deno.env.get("LLAMANE_PYTHON");
    if (value === undefined) Deno.env.delete("LLAMANE_PYTHON");
    else Deno.env.set("LLAMANE_PYTHON", value);
    try {
      await body();
    } finally {
      if (saved === undefined) Deno.env.delete("LLAMANE_PYTHON");
      else Deno.env.set("LLAMANE_PYTHON", saved);
    }
  };
}

Deno.test(
  "oraclePython() fails with the setup command when LLAMANE_PYTHON names no file",
  withPython("/nonexistent/python", () => {
    throws(oraclePython, (e: unknown) =>
      e instanceof OraclePythonMissingError &&
      e.message.includes('LLAMANE_PYTHON has no interpreter at "/nonexistent/python"') &&
      e.message.includes("bash scripts/setup_venv.sh"));
  }),
);

Deno.test(
  "runOracleScript() returns stdout, and throws with stderr on failure",
  withPython(undefined, async () => {
    const python = oraclePython();
    ok(python.endsWith(".venv/bin/python"), python);
    const script = await Deno.makeTempFile({ suffix: ".py" });
    try {
      await Deno.writeTextFile(
        script,
        "import sys\nprint(sys.argv[1])\nprint('said ' + sys.argv[1], file=sys.stderr)\nsys.exit(int(sys.argv[2]))\n",
      );
      strictEqual(await runOracleScript(script, ["hello", "0"]), "hello\n");
      await rejects(runOracleScript(script, ["oops", "3"]), /exited with status 3\nsaid oops/);
    } finally {
      await Deno.remove(script);
    }
  }),
);
