/**
 * Reading the fields of a JSON request body: each reader checks one field's type and range and
 * names the field in its 400 when they are wrong. Absent and `null` fields read as undefined, as
 * the OpenAI API treats them; fields nobody reads are ignored, as it does.
 *
 * @module
 */

import { invalidField } from "./api_error.ts";

/** A request body: a JSON object. */
export type JsonObject = Readonly<Record<string, unknown>>;

/** Whether `value` is a JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What the value was, for messages: `the string "hot"`, `an array`, `null`... */
export function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  }
  if (typeof value === "number") return `the number ${value}`;
  return `a ${typeof value}`;
}

function wrongType(param: string, expected: string, value: unknown) {
  return invalidField(
    param,
    `Invalid '${param}': expected ${expected}, got ${describeJson(value)}`,
  );
}

/** A number in `[min, max]` (whole if `integer`), or undefined when absent. */
export function numberField(
  body: JsonObject,
  param: string,
  range: { readonly min: number; readonly max: number; readonly integer?: boolean },
): number | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  const expected = `${
    range.integer ? "a whole number" : "a number"
  } in [${range.min}, ${range.max}]`;
  if (typeof value !== "number") throw wrongType(param, expected, value);
  if ((range.integer && !Number.isInteger(value)) || value < range.min || value > range.max) {
    throw invalidField(param, `Invalid '${param}': expected ${expected}, got ${value}`);
  }
  return value;
}

/** A boolean, or undefined when absent. */
export function booleanField(body: JsonObject, param: string): boolean | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw wrongType(param, "a boolean", value);
  return value;
}

/** A string, or undefined when absent. */
export function stringField(body: JsonObject, param: string): string | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw wrongType(param, "a string", value);
  return value;
}

/** A JSON object, or undefined when absent. */
export function objectField(body: JsonObject, param: string): JsonObject | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (!isJsonObject(value)) throw wrongType(param, "an object", value);
  return value;
}

/** An array, or undefined when absent. */
export function arrayField(body: JsonObject, param: string): readonly unknown[] | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw wrongType(param, "an array", value);
  return value;
}
