import { HttpError } from './errors';

/** Slot IDs share the session ID format (docs/architecture.md, Sessions). */
export const SLOT_ID_PATTERN = /^[a-z2-7]{26}$/;

export type Route =
  | { name: 'healthz' }
  | { name: 'listBlobs' }
  | { name: 'getBlob'; slotId: string }
  | { name: 'putBlob'; slotId: string }
  | { name: 'deleteBlob'; slotId: string }
  | { name: 'events' }
  | { name: 'renewPresence'; slotId: string };

/** Maps a method and path to a route, or throws 404/405/400 as an HttpError. Pure, no sockets. */
export function matchRoute(method: string, pathname: string): Route {
  const allow = (allowed: string[]): void => {
    if (!allowed.includes(method)) {
      throw new HttpError('method_not_allowed', `${method} is not allowed on ${pathname}`, {
        headers: { Allow: allowed.join(', ') },
      });
    }
  };
  if (pathname === '/healthz') {
    allow(['GET', 'HEAD']);
    return { name: 'healthz' };
  }
  if (pathname === '/v1/blobs' || pathname === '/v1/blobs/') {
    allow(['GET', 'HEAD']);
    return { name: 'listBlobs' };
  }
  if (pathname === '/v1/events') {
    allow(['GET']);
    return { name: 'events' };
  }
  const presenceMatch = /^\/v1\/presence\/([^/]+)$/.exec(pathname);
  if (presenceMatch) {
    const slotId = presenceMatch[1];
    if (!SLOT_ID_PATTERN.test(slotId)) throw new HttpError('bad_request', 'slotId must match ^[a-z2-7]{26}$');
    allow(['POST']);
    return { name: 'renewPresence', slotId };
  }
  const slotMatch = /^\/v1\/blobs\/([^/]+)$/.exec(pathname);
  if (slotMatch) {
    const slotId = slotMatch[1];
    if (!SLOT_ID_PATTERN.test(slotId)) throw new HttpError('bad_request', 'slotId must match ^[a-z2-7]{26}$');
    allow(['GET', 'HEAD', 'PUT', 'DELETE']);
    if (method === 'PUT') return { name: 'putBlob', slotId };
    if (method === 'DELETE') return { name: 'deleteBlob', slotId };
    return { name: 'getBlob', slotId };
  }
  throw new HttpError('not_found', `no route for ${pathname}`);
}
