import { clip, NotFoundError, UnavailableError } from '../errors.js';
import { recordStorageError } from '../telemetry/metrics.js';

/**
 * Every storage call of the server has a deadline: `timed(store, ...)` returns a view of `store`
 * whose asynchronous methods (get, put, exists, list, putIfAbsent, and whatever the store
 * interfaces gain later: the view is a Proxy, not a list of methods) reject with UnavailableError
 * when the store has not answered within `timeoutMs`:
 *
 *     the store did not answer within 30 s: get s3://bucket/key
 *
 * (the URI clipped like every client string in a message: 64 characters, then its length).
 *
 * The underlying request may still be pending (a stopped endpoint never answers and a socket
 * may stay open); its eventual outcome is ignored. Synchronous methods and properties pass
 * through unchanged. Methods run with the store itself as `this`, so calls a store makes on
 * itself (putIfAbsent reading back what it wrote) are not timed twice and private fields work.
 *
 * The deadline covers a whole call, including the download of a whole object by get(): a setting
 * meant for a stalled endpoint must leave room for the largest object at the slowest bandwidth.
 */
export interface TimedStoreOptions {
  /** The deadline of each call, in milliseconds (> 0). */
  timeoutMs: number;
  /** How a key is named in the error: its URI (`s3://bucket/key`, a path); default the key. */
  describe?: (key: string) => string;
}

/** The deadline as people read it: `30 s`, `1.5 s`, `250 ms`. */
function formatTimeout(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Number((ms / 1000).toFixed(3))} s`;
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';

/** The errors the deadline made (metrics tell a timeout from other failures). */
const deadlineErrors = new WeakSet<object>();

/** Rejects with UnavailableError naming `operation` when `promise` has not settled within `timeoutMs`. */
export function withDeadline<T>(promise: PromiseLike<T>, timeoutMs: number, operation: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        const error = new UnavailableError(`the store did not answer within ${formatTimeout(timeoutMs)}: ${operation}`);
        deadlineErrors.add(error);
        reject(error);
      },
      timeoutMs,
    );
  });
  return Promise.race([Promise.resolve(promise), deadline]).finally(() => clearTimeout(timer));
}

/** The store kind metrics name: s3 (S3Store), file (FileStore, ConfinedFileStore), else the class name. */
function storeKind(store: object): string {
  const name = store.constructor?.name ?? 'unknown';
  return /^s3/i.test(name) ? 's3' : /file/i.test(name) ? 'file' : name.toLowerCase();
}

/** error.type of a failed call: 'timeout' for the deadline, else the error's class name. */
const errorType = (error: unknown): string =>
  error instanceof Error && deadlineErrors.has(error) ? 'timeout' : error instanceof Error ? error.constructor.name : typeof error;

/** `store` with a deadline on each of its asynchronous methods (see the module comment). */
export function timed<S extends object>(store: S, options: TimedStoreOptions): S {
  const { timeoutMs } = options;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`a storage timeout must be a positive number of milliseconds, got ${timeoutMs}`);
  }
  const describe = options.describe ?? ((key: string) => key);
  const kind = storeKind(store);
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function' || property === 'constructor') return value;
      const cached = wrapped.get(property);
      if (cached) return cached;
      const method = value as (...args: unknown[]) => unknown;
      const call = (...args: unknown[]): unknown => {
        const result = method.apply(target, args);
        if (!isThenable(result)) return result;
        const first = args[0];
        const name = typeof property === 'symbol' ? property.toString() : property;
        const operation = typeof first === 'string' ? `${name} ${clip(describe(first))}` : name;
        return withDeadline(result, timeoutMs, operation).catch((error: unknown) => {
          // memometer.storage.errors: failures and timeouts; a missing object is an answer.
          if (!(error instanceof NotFoundError)) recordStorageError(name, kind, errorType(error));
          throw error;
        });
      };
      wrapped.set(property, call);
      return call;
    },
  });
}
