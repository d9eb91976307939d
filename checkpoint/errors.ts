/**
 * The errors a checkpoint reader throws. A file that cannot be read as a checkpoint gives a
 * {@link CheckpointFormatError} (or its {@link ForbiddenPickleError} subclass when the pickle asks
 * for something a state dict never needs); a request the checkpoint cannot satisfy, such as an
 * unknown tensor name or rows out of range, gives a {@link TensorReadError}.
 *
 * @module
 */

/** A file that is not a well-formed checkpoint: truncated, corrupt, or of an unsupported kind. */
export class CheckpointFormatError extends SyntaxError {
  /** The checkpoint file. */
  readonly path: string;
  /** Byte offset in the file where the problem was found. */
  readonly offset: number;

  /**
   * Builds the message `Cannot read checkpoint "<path>": <detail>`.
   *
   * @param path the checkpoint file
   * @param offset byte offset in the file where the problem was found
   * @param detail what is wrong, with values quoted
   */
  constructor(path: string, offset: number, detail: string) {
    super(`Cannot read checkpoint "${path}": ${detail}`);
    this.name = "CheckpointFormatError";
    this.path = path;
    this.offset = offset;
  }
}

/**
 * A pickle that names a global or uses an opcode outside the state-dict allowlist: loading it
 * would run code (or build objects) no tensor checkpoint needs, so the file may be malicious.
 */
export class ForbiddenPickleError extends CheckpointFormatError {
  /** The forbidden global (`module.name`) or opcode name, e.g. `posix.system` or `INST`. */
  readonly forbidden: string;

  /**
   * Builds the message `Cannot read checkpoint "<path>": <detail>`.
   *
   * @param path the checkpoint file
   * @param offset byte offset in the file of the offending opcode
   * @param forbidden the global (`module.name`) or opcode refused
   * @param detail the full description
   */
  constructor(path: string, offset: number, forbidden: string, detail: string) {
    super(path, offset, detail);
    this.name = "ForbiddenPickleError";
    this.forbidden = forbidden;
  }
}

/** A read the checkpoint cannot satisfy: no such tensor, bad rows, or too large at once. */
export class TensorReadError extends RangeError {
  /** The checkpoint file. */
  readonly path: string;
  /** The tensor asked for. */
  readonly tensor: string;

  /**
   * Builds the message `Cannot read tensor "<tensor>" from "<path>": <detail>`.
   *
   * @param path the checkpoint file
   * @param tensor the tensor asked for
   * @param detail what is wrong
   */
  constructor(path: string, tensor: string, detail: string) {
    super(`Cannot read tensor "${tensor}" from "${path}": ${detail}`);
    this.name = "TensorReadError";
    this.path = path;
    this.tensor = tensor;
  }
}
