/**
 * ListMeasurements page tokens (AIP-158): opaque to clients, base64url of the last index key a
 * page examined and a hash of the filter it was issued for, so that a token sent with another
 * filter is refused instead of paging through the wrong listing.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import type { Filter } from './list-filter.js';

interface TokenBody {
  /** The listing resumes after this index key. */
  after: string;
  /** {@link filterHash} of the filter the token was issued for. */
  filter: string;
}

const filterHash = (filter: Filter) => createHash('sha256').update(filter.canonical).digest('base64url').slice(0, 16);

export function encodeToken(after: string, filter: Filter): string {
  const body: TokenBody = { after, filter: filterHash(filter) };
  return Buffer.from(JSON.stringify(body)).toString('base64url');
}

/** The index key a token resumes after; `isIndexKey` vets it (a token is client input). */
export function decodeToken(token: string, filter: Filter, isIndexKey: (key: string) => boolean): string {
  let body: Partial<TokenBody> | undefined;
  try {
    body = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<TokenBody>;
  } catch {
    // reported below
  }
  if (typeof body?.after !== 'string' || !isIndexKey(body.after) || typeof body.filter !== 'string') {
    throw new InvalidArgumentError('is not a next_page_token of ListMeasurements', 'page_token');
  }
  if (body.filter !== filterHash(filter)) {
    throw new InvalidArgumentError('was issued for another filter; send the filter of the first page, or no token to start over', 'page_token');
  }
  return body.after;
}
