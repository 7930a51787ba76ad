/**
 * The one error hierarchy of memometer. Every layer throws these; the server maps them to gRPC
 * status codes in one place and the CLI maps them to exit codes. `subject` names the field,
 * flag or object the error is about so that messages can point at it.
 */
export type ErrorKind =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'CANCELLED'
  | 'DEADLINE_EXCEEDED'
  | 'UNAVAILABLE'
  | 'ALREADY_EXISTS';

export abstract class MemometerError extends Error {
  abstract readonly kind: ErrorKind;
  /** The message without the subject prefix, for callers that name the subject their own way. */
  readonly detail: string;

  constructor(
    message: string,
    readonly subject?: string,
    options?: { cause?: unknown },
  ) {
    super(subject ? `${subject}: ${message}` : message, options);
    this.name = new.target.name;
    this.detail = message;
  }
}

export class InvalidArgumentError extends MemometerError {
  readonly kind = 'INVALID_ARGUMENT' as const;
}
export class NotFoundError extends MemometerError {
  readonly kind = 'NOT_FOUND' as const;
}
export class PermissionDeniedError extends MemometerError {
  readonly kind = 'PERMISSION_DENIED' as const;
}
export class UnauthenticatedError extends MemometerError {
  readonly kind = 'UNAUTHENTICATED' as const;
}
export class ResourceExhaustedError extends MemometerError {
  readonly kind = 'RESOURCE_EXHAUSTED' as const;
}
export class FailedPreconditionError extends MemometerError {
  readonly kind = 'FAILED_PRECONDITION' as const;
}
/**
 * A loss became NaN or infinite: the measurement stops rather than score heads with broken
 * weights. FAILED_PRECONDITION, not INVALID_ARGUMENT: the same options may train fine on another
 * model or data set, and a retry of the same request diverges again.
 */
export class TrainingDivergedError extends FailedPreconditionError {}
export class CancelledError extends MemometerError {
  readonly kind = 'CANCELLED' as const;
}
export class DeadlineExceededError extends MemometerError {
  readonly kind = 'DEADLINE_EXCEEDED' as const;
}
export class UnavailableError extends MemometerError {
  readonly kind = 'UNAVAILABLE' as const;
}

/** How many characters of a client-supplied string an error message shows. */
export const QUOTE_CHARS = 64;

/**
 * A client-supplied string (request id, URI, key, name) as error messages show it: at most
 * {@link QUOTE_CHARS} characters, control characters escaped, and the full length when cut, so a
 * huge or binary value can never blow up a status message (`'aaaa…'(10000 chars)`). `clip` is
 * the same without the quotes, for subjects.
 */
export function clip(s: string, max = QUOTE_CHARS): string {
  const chars = Array.from(String(s));
  // eslint-disable-next-line no-control-regex -- matching control characters is the point: they are shown escaped
  const shown = chars.slice(0, max).join('').replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return chars.length > max ? `${shown}…(${chars.length} chars)` : shown;
}

/** {@link clip} in single quotes: `quote('abc')` is `'abc'`; long strings end `…'(N chars)`. */
export function quote(s: string, max = QUOTE_CHARS): string {
  const chars = Array.from(String(s));
  if (chars.length <= max) return `'${clip(s, max)}'`;
  return `'${clip(chars.slice(0, max).join(''), max)}…'(${chars.length} chars)`;
}
