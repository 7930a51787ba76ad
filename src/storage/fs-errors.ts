/**
 * The one mapping from Node's error codes (`ENOENT`, `ERR_FS_FILE_TOO_LARGE`, ...) to memometer's
 * typed errors, for every store and reader that touches the local file system. Anything it does
 * not know stays as it is (and becomes INTERNAL with a log line at the server).
 */
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from '../errors.js';

/** The `code` of a Node (or minio) error, as a string; undefined when it has none. */
export function errorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e).code) : undefined;
}

/** Codes that mean "there is no object at this path" (a read finds nothing, a write cannot place one). */
const ABSENT = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST', 'ELOOP']);

/** Whether `e` says the path names no object (missing, a folder in the way, a symbolic-link loop). */
export function isAbsent(e: unknown): boolean {
  const code = errorCode(e);
  return code !== undefined && ABSENT.has(code) && code !== 'EISDIR' && code !== 'EEXIST';
}

export type FsOperation = 'get' | 'put' | 'stat' | 'list';

/**
 * A typed error for a failed file-system call on `subject` (the store key), or `e` itself when
 * the code is not one of these:
 * - ENOENT, ENOTDIR, EISDIR, EEXIST, ELOOP: NOT_FOUND for reads (a loop of symbolic links names
 *   no object, like a missing file), FAILED_PRECONDITION for writes;
 * - EACCES, EPERM, EROFS: PERMISSION_DENIED;
 * - ENAMETOOLONG: INVALID_ARGUMENT (a path segment or the whole path is longer than the OS allows);
 * - EFBIG, ERR_FS_FILE_TOO_LARGE (a file over 2 GiB read whole), ENOSPC, EDQUOT, EMFILE, ENFILE:
 *   RESOURCE_EXHAUSTED.
 */
export function fsError(e: unknown, subject: string, op: FsOperation): unknown {
  const code = errorCode(e);
  const options = { cause: e };
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EEXIST':
    case 'ELOOP':
      if (op === 'put') {
        return new FailedPreconditionError(`cannot write: a path component is not a directory, or the key names a directory (${code})`, subject, options);
      }
      return new NotFoundError(code === 'ELOOP' ? 'no such object in the store (a loop of symbolic links)' : 'no such object in the store', subject, options);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new PermissionDeniedError(`cannot ${op} the object (${code})`, subject, options);
    case 'ENAMETOOLONG':
      return new InvalidArgumentError('the path is longer than the file system allows (ENAMETOOLONG)', subject, options);
    case 'EFBIG':
    case 'ERR_FS_FILE_TOO_LARGE':
      return new ResourceExhaustedError(`cannot ${op} the object: it is larger than this server reads in one piece (${code})`, subject, options);
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EMFILE':
    case 'ENFILE':
      return new ResourceExhaustedError(`cannot ${op} the object (${code})`, subject, options);
    default:
      return e;
  }
}
