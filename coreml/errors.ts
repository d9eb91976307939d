/**
 * Error classes of the Core ML writer and reader. A file we cannot accept is a
 * {@link CoremlFormatError} (a SyntaxError carrying the path and the byte offset); a program that
 * breaks MIL's rules while being built or validated is a {@link MilProgramError}; a tensor whose
 * data does not fit its declared shape or dtype range is a {@link TensorShapeError}.
 *
 * @module
 */

/**
 * A Core ML file (model.mlmodel, weight.bin, Manifest.json) is malformed, or uses a feature this
 * reader does not support. The message says which file, where and what was wrong.
 */
export class CoremlFormatError extends SyntaxError {
  /** The file that was being read. */
  readonly path: string;
  /** Byte offset of the problem in that file, when it has one. */
  readonly offset: number | undefined;

  /**
   * Builds the error from the message the caller wrote and where in the file it applies.
   *
   * @param path the file being read
   * @param offset byte offset of the problem, or `undefined` when no single offset applies
   * @param message the full message, `Cannot read ... "path": detail`
   * @param options the underlying error, if any
   */
  constructor(path: string, offset: number | undefined, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CoremlFormatError";
    this.path = path;
    this.offset = offset;
  }
}

/**
 * A MIL program breaks a structural rule: an invalid or duplicate identifier, a binding to an
 * undefined value, a function description that disagrees with its function.
 */
export class MilProgramError extends TypeError {
  /** The function the problem is in, when it is inside one. */
  readonly functionName: string | undefined;
  /** Index of the operation the problem is in (within its function's block), when there is one. */
  readonly operationIndex: number | undefined;

  /**
   * Builds the error and records where in the program the problem is.
   *
   * @param message what was wrong, in the `Cannot ...: detail` voice
   * @param where the function and operation index the problem is in
   */
  constructor(message: string, where: { functionName?: string; operationIndex?: number } = {}) {
    super(message);
    this.name = "MilProgramError";
    this.functionName = where.functionName;
    this.operationIndex = where.operationIndex;
  }
}

/** A tensor's values do not match its declared shape, dtype or value range. */
export class TensorShapeError extends RangeError {
  /**
   * Builds the error from the message the caller wrote.
   *
   * @param message what was wrong, in the `Cannot ...: detail` voice
   */
  constructor(message: string) {
    super(message);
    this.name = "TensorShapeError";
  }
}
