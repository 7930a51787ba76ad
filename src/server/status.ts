import { randomUUID } from 'node:crypto';
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { clip, MemometerError, type ErrorKind } from '../errors.js';

const CODE: Record<ErrorKind, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  CANCELLED: status.CANCELLED,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
};

/**
 * The longest status message the service sends. Messages quote client strings through
 * `quote()`; this cap is the safety net for any that does not, well below the 8 KiB of metadata
 * a gRPC client accepts (a longer message would make the client fail with a metadata error).
 */
export const MAX_MESSAGE_CHARS = 1024;

export interface ErrorReport {
  code: status;
  /** The status code's name, e.g. INVALID_ARGUMENT. */
  codeName: string;
  message: string;
}

/** Renames engine option subjects to the request's field names. */
export type SubjectNames = Record<string, string>;

/**
 * The one place typed errors become gRPC statuses. Unknown errors are logged with their stack
 * and reach the client as INTERNAL with a short id to find the log line, never the stack.
 */
export function reportError(error: unknown, subjects: SubjectNames = {}): ErrorReport {
  if (error instanceof MemometerError) {
    // Subjects are often keys taken from client URIs: never more than a short prefix of them.
    const subject = error.subject ? (subjects[error.subject] ?? clip(error.subject)) : undefined;
    const message = subject ? `${subject}: ${error.detail}` : error.detail;
    return { code: CODE[error.kind], codeName: error.kind, message: message.length > MAX_MESSAGE_CHARS ? clip(message, MAX_MESSAGE_CHARS) : message };
  }
  const id = randomUUID().slice(0, 8);
  console.error(`[memometer] internal error ${id}:`, error);
  return { code: status.INTERNAL, codeName: 'INTERNAL', message: `internal error (id ${id})` };
}

export function toServiceError(report: ErrorReport): ServiceError {
  return Object.assign(new Error(report.message), {
    code: report.code,
    details: report.message,
    metadata: new Metadata(),
  });
}
