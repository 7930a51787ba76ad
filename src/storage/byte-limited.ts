import { quote, ResourceExhaustedError } from '../errors.js';
import type { ObjectStore } from './store.js';

/**
 * A view of a store that refuses to read more than `maxBytes` in total, naming `subject` (a
 * request field such as `dataset_uri`, or the key). Each object's size is asked first (a stat,
 * a HEAD), so an object that would take the total over the limit is refused before any of it
 * is read; the running total counts what was actually read (an object that grew between the
 * two calls is refused after its read).
 */
export function byteLimited(store: ObjectStore, maxBytes: number, subject?: string): ObjectStore {
  let read = 0;
  const refuse = (key: string, bytes: number, earlier: number): ResourceExhaustedError => {
    const before = earlier > 0 ? ` (${earlier + bytes} bytes with the ${earlier} read before it)` : '';
    return new ResourceExhaustedError(`${quote(key)} is ${bytes} bytes${before}, over the limit of ${maxBytes} bytes`, subject ?? key);
  };
  return {
    get: async (key) => {
      const size = await store.size(key);
      if (read + size > maxBytes) throw refuse(key, size, read);
      read += size; // reserved at once: concurrent reads (an IDX folder's files) count each other
      const bytes = await store.get(key);
      read += bytes.length - size;
      if (read > maxBytes) throw refuse(key, bytes.length, read - bytes.length);
      return bytes;
    },
    size: (key) => store.size(key),
    list: (prefix) => store.list(prefix),
    exists: (key) => store.exists(key),
    put: (key, body) => store.put(key, body),
  };
}
