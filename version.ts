/**
 * The llamane version, from deno.json, recorded in every bundle it writes.
 *
 * @module
 */

import config from "./deno.json" with { type: "json" };

/** This llamane's version. */
export const VERSION: string = config.version;
