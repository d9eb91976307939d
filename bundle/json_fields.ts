/**
 * Checked reads of fields of untrusted JSON. Each read names the field by its path
 * (`pieces[1].functions[0].callLength`) and says what was expected, and never quotes the value it
 * found: a hostile file gets llamane's words and its own field names back, nothing else.
 *
 * @module
 */

/** Throws the reader's error for field `where`; `detail` completes "`where` ...". */
export type FieldFail = (where: string, detail: string) => never;

/** A JSON object being read, and where it sits in the document. */
export class JsonFields {
  readonly #value: Record<string, unknown>;
  /** Path of this object in the document, `""` at the top. */
  readonly where: string;
  readonly #fail: FieldFail;

  private constructor(value: Record<string, unknown>, where: string, fail: FieldFail) {
    this.#value = value;
    this.where = where;
    this.#fail = fail;
  }

  /** Reads `value` as an object, or fails naming `where` (the document itself when empty). */
  static of(value: unknown, where: string, fail: FieldFail): JsonFields {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      fail(where === "" ? "the document" : `"${where}"`, "must be a JSON object");
    }
    return new JsonFields(value as Record<string, unknown>, where, fail);
  }

  /** The path of field `key` of this object. */
  path(key: string): string {
    return this.where === "" ? key : `${this.where}.${key}`;
  }

  /** Fails for field `key` with `detail`. */
  fail(key: string, detail: string): never {
    return this.failAt(this.path(key), detail);
  }

  /** Fails for the value at document path `where` (an item of a list, say) with `detail`. */
  failAt(where: string, detail: string): never {
    return this.#fail(`"${where}"`, detail);
  }

  /** The raw value of `key` (own properties only), `undefined` when absent. */
  raw(key: string): unknown {
    return Object.hasOwn(this.#value, key) ? this.#value[key] : undefined;
  }

  /** Field `key` as an object. */
  object(key: string): JsonFields {
    return JsonFields.of(this.raw(key), this.path(key), this.#fail);
  }

  /** Field `key` as an object, or `null` when it is `null`. A missing field fails. */
  objectOrNull(key: string): JsonFields | null {
    const value = this.raw(key);
    if (value === undefined) this.fail(key, "is missing (it may be null)");
    return value === null ? null : this.object(key);
  }

  /** Field `key` as an integer from `min` to `max`. */
  integer(key: string, min: number, max: number): number {
    const value = this.raw(key);
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
      this.fail(key, `must be an integer from ${min} to ${max}`);
    }
    return value as number;
  }

  /** Field `key` as an integer from `min` to `max`, or `null`. */
  integerOrNull(key: string, min: number, max: number): number | null {
    return this.raw(key) === null ? null : this.integer(key, min, max);
  }

  /** Field `key` as a finite number greater than 0. */
  positive(key: string): number {
    const value = this.raw(key);
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      this.fail(key, "must be a number greater than 0");
    }
    return value as number;
  }

  /** Field `key` as `true` or `false`. */
  boolean(key: string): boolean {
    const value = this.raw(key);
    if (typeof value !== "boolean") this.fail(key, "must be true or false");
    return value as boolean;
  }

  /** Field `key` as a string matching `pattern`; `expected` describes it for the error. */
  string(key: string, pattern: RegExp, expected: string): string {
    const value = this.raw(key);
    if (typeof value !== "string" || !pattern.test(value)) this.fail(key, `must be ${expected}`);
    return value as string;
  }

  /** Field `key` as one of `choices`. */
  oneOf<T extends string>(key: string, choices: readonly T[]): T {
    const value = this.raw(key);
    if (!choices.includes(value as T)) {
      this.fail(key, `must be one of ${choices.map((c) => `"${c}"`).join(", ")}`);
    }
    return value as T;
  }

  /** Field `key` as a list of `min` to `max` items, each read by `item` at its own path. */
  list<T>(key: string, min: number, max: number, item: (value: unknown, where: string) => T): T[] {
    const value = this.raw(key);
    if (!Array.isArray(value) || value.length < min || value.length > max) {
      this.fail(key, `must be a list of ${min} to ${max} items`);
    }
    return (value as unknown[]).map((v, i) => item(v, `${this.path(key)}[${i}]`));
  }
}
