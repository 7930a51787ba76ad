import { timingSafeEqual } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { UnauthenticatedError } from '../errors.js';

/** Checks `authorization: Bearer <token>` when the server was given a token. */
export function authorize(metadata: Metadata, token: string | undefined): void {
  if (!token) return;
  const header = String(metadata.get('authorization')[0] ?? '');
  const match = /^Bearer\s+(.+)$/i.exec(header);
  if (!match) throw new UnauthenticatedError('a bearer token is required', 'authorization');
  const given = Buffer.from(match[1]!.trim());
  const expected = Buffer.from(token);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new UnauthenticatedError('the bearer token is not valid', 'authorization');
  }
}
