import { BlockList, isIP } from 'node:net';

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) counts as `1.2.3.4`. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1] : address.toLowerCase();
}

export interface AddressRange {
  address: string;
  family: 'ipv4' | 'ipv6';
  prefix: number;
}

/** `10.0.0.5`, `10.0.0.0/8`, `::1` or `fd00::/8`; undefined for anything else. */
export function parseAddressRange(text: string): AddressRange | undefined {
  const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!match) return undefined;
  const address = normalizeAddress(match[1]);
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  const prefix = match[2] === undefined ? max : Number(match[2]);
  if (prefix > max) return undefined;
  return { address, family, prefix };
}

/**
 * Who a request comes from. The peer address, unless the peer is a configured proxy: then the
 * X-Forwarded-For chain is walked from the right (the entry our proxy appended) past every trusted
 * proxy, and the first address that is not one is the client. Entries left of that are whatever the
 * client claimed and are never believed.
 */
export class ClientAddressResolver {
  private readonly trusted = new BlockList();
  private readonly any: boolean;

  constructor(trustProxy: readonly string[]) {
    for (const entry of trustProxy) {
      const range = parseAddressRange(entry);
      if (!range) throw new RangeError(`not an address or CIDR range: ${entry}`);
      this.trusted.addSubnet(range.address, range.prefix, range.family);
    }
    this.any = trustProxy.length > 0;
  }

  isTrustedProxy(peer: string): boolean {
    if (!this.any) return false;
    const address = normalizeAddress(peer);
    const version = isIP(address);
    return version !== 0 && this.trusted.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }

  resolve(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    const direct = normalizeAddress(peer ?? 'unknown');
    if (!this.isTrustedProxy(direct) || forwardedFor === undefined) return direct;
    const chain = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '');
    let client = direct;
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = normalizeAddress(chain[i]);
      // A malformed entry from a proxy we trust: stop at the last address we can vouch for.
      if (isIP(hop) === 0) break;
      client = hop;
      if (!this.isTrustedProxy(hop)) break;
    }
    return client;
  }
}
