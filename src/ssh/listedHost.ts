/**
 * How to reach a session that a listing (another device's manifest, or our own snapshot) describes.
 * The listing's host label is another device's name for the host: looked up in *this* device's ssh
 * config it may mean a different machine, user or port, and its IdentityFile and ProxyJump belong
 * to that alias. So the local alias is used only when its HostName, User and Port all match the
 * listing; otherwise the listed target is reached with this device's defaults for that target, and
 * the caller says so. No vscode import.
 */
import { ResolvedHost, SshConfigOptions, resolveHost } from './sshConfig';

export interface ListedHost {
  hostLabel: string;
  user: string;
  hostName: string;
  port: number;
}

export interface ListedHostResolution {
  host: ResolvedHost;
  /** Set when the local alias was not used: what was done instead, for the log and the tab. */
  note?: string;
}

export function listedTarget(listing: Pick<ListedHost, 'user' | 'hostName' | 'port'>): string {
  const host = listing.hostName.includes(':') ? `[${listing.hostName}]` : listing.hostName;
  return `${listing.user}@${host}:${listing.port}`;
}

export function resolveListedHost(listing: ListedHost, options: SshConfigOptions): ListedHostResolution {
  let local: ResolvedHost | undefined;
  try {
    local = resolveHost(listing.hostLabel, options);
  } catch {
    local = undefined;
  }
  // Host names are DNS names (case does not matter, RFC 4343); user names are case-sensitive.
  if (local && local.hostName.toLowerCase() === listing.hostName.toLowerCase() && local.user === listing.user && local.port === listing.port) {
    return { host: { ...local, label: listing.hostLabel } };
  }
  const target = listedTarget(listing);
  const base = resolveHost(target, options);
  const host: ResolvedHost = { ...base, label: listing.hostLabel, user: listing.user, hostName: listing.hostName, port: listing.port };
  const here = local ? `${local.user}@${local.hostName}:${local.port}` : undefined;
  const why = here
    ? `"${listing.hostLabel}" means ${here} in this device's ssh config`
    : `"${listing.hostLabel}" cannot be resolved with this device's ssh config`;
  return { host, note: `${why}; connecting to the listed ${target} with default settings` };
}
