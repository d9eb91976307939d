/**
 * The API key: with one set, a request must carry `Authorization: Bearer <key>`. Keys are
 * compared in time that does not depend on where they first differ.
 *
 * @module
 */

import { ApiError } from "./api_error.ts";

const encoder = new TextEncoder();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return difference === 0;
}

/**
 * Checks the request's bearer token against `apiKey`.
 *
 * @throws {ApiError} 401 when the header is missing or the key is wrong
 */
export function checkApiKey(request: Request, apiKey: string): void {
  const header = request.headers.get("authorization");
  const match = header === null ? null : /^Bearer\s+(.+)$/i.exec(header.trim());
  if (match === null) {
    throw new ApiError(
      401,
      "Missing API key: send it as 'Authorization: Bearer <key>'",
      { code: "invalid_api_key" },
    );
  }
  if (!sameBytes(encoder.encode(match[1]!), encoder.encode(apiKey))) {
    throw new ApiError(401, "Incorrect API key provided", { code: "invalid_api_key" });
  }
}
