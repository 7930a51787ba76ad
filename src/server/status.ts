import { randomUUID } from 'node:crypto';
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { MemometerError, type ErrorKind } from '../errors.js';

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
    const subject = error.subject ? (subjects[error.subject] ?? error.subject) : undefined;
    return { code: CODE[error.kind], codeName: error.kind, message: subject ? `${subject}: ${error.detail}` : error.detail };
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
