/** Errors of the kernel glue: a stable code (protocol/error-codes.ts, GlueCode) and one line a user can act on. */
import { UsbipError } from "../protocol/errors.js";
import { GlueCode, type GlueErrorCode as Code } from "../protocol/error-codes.js";

export const GlueErrorCode = GlueCode;

export class GlueError extends UsbipError {
  constructor(code: Code, message: string) {
    super(code, message);
    this.name = "GlueError";
  }
}
