/**
 * `@huggingface/jinja`, pinned here by its full npm specifier, so that llamane imported by URL
 * (where the repository's import map does not apply) resolves it too.
 *
 * @module
 */

export { Environment, Interpreter, parse, Template, tokenize } from "npm:@huggingface/jinja@0.5.13";
