/**
 * Typed reads of a parsed JSON document that name the offending field when the document does not
 * have the expected shape, e.g. `model.merges[12] is a number, expected a string or a pair`.
 *
 * @module
 */

/** A JSON object with the path that reached it, for error messages. */
export class JsonFields {
  readonly path: string;
  readonly #object: Readonly<Record<string, unknown>>;
  readonly #fail: (detail: string) => never;

  /**
   * @param value the parsed value, which must be an object
   * @param path where it sits in the document (`""` for the root)
   * @param fail throws the caller's error for a detail message
   */
  constructor(value: unknown, path: string, fail: (detail: string) => never) {
    this.path = path;
    this.#fail = fail;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      fail(`${path || "the document"} is ${describe(value)}, expected an object`);
    }
    this.#object = value as Record<string, unknown>;
  }

  /** Throws the caller's error about field `key` (or the object itself without one). */
  fail(detail: string, key?: string): never {
    return this.#fail(
      `${key === undefined ? this.path || "the document" : this.#at(key)} ${detail}`,
    );
  }

  /** Whether the field is present and not null. */
  has(key: string): boolean {
    return this.#object[key] !== undefined && this.#object[key] !== null;
  }

  /** The raw value of a field. */
  raw(key: string): unknown {
    return this.#object[key];
  }

  /** A nested object; undefined when absent or null and `optional`. */
  object(key: string): JsonFields;
  object(key: string, optional: "optional"): JsonFields | undefined;
  object(key: string, optional?: "optional"): JsonFields | undefined {
    if (optional && !this.has(key)) return undefined;
    return new JsonFields(this.#object[key], this.#at(key), this.#fail);
  }

  /** An array of objects. */
  objects(key: string): JsonFields[] {
    return this.array(key).map((item, i) =>
      new JsonFields(item, `${this.#at(key)}[${i}]`, this.#fail)
    );
  }

  /** An array. */
  array(key: string): readonly unknown[] {
    const value = this.#object[key];
    if (!Array.isArray(value)) this.fail(`is ${describe(value)}, expected an array`, key);
    return value;
  }

  /** A string; `fallback` when absent or null, if given. */
  string(key: string, fallback?: string): string {
    const value = this.#object[key];
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    if (typeof value !== "string") this.fail(`is ${describe(value)}, expected a string`, key);
    return value;
  }

  /** A string, or undefined when absent or null. */
  optionalString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  /** A boolean; `fallback` when absent or null. */
  boolean(key: string, fallback: boolean): boolean {
    const value = this.#object[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "boolean") this.fail(`is ${describe(value)}, expected true or false`, key);
    return value;
  }

  /** A non-negative integer; `fallback` when absent or null, if given. */
  count(key: string, fallback?: number): number {
    const value = this.#object[key];
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      this.fail(`is ${describe(value)}, expected a non-negative integer`, key);
    }
    return value;
  }

  #at(key: string): string {
    return this.path === "" ? key : `${this.path}.${key}`;
  }
}

/** A short description of a JSON value for error messages. */
export function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  }
  if (typeof value === "object") return "an object";
  return `${typeof value === "number" ? "the number" : "the value"} ${String(value)}`;
}
