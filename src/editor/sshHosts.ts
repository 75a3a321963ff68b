/**
 * This device's hosts: ~/.ssh/config's aliases, the recently used ones, and how to reach a host a
 * listing names. One instance, built first by activate() and handed to the tab manager, the sync
 * controller, the views and Report a Problem. No runtime vscode import.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type * as vscode from 'vscode';
import { stripControls } from '../common/displayText';
import type { Logger } from '../common/logger';
import { type ListedHost, type ListedHostResolution, resolveListedHost } from '../ssh/listedHost';
import { type ResolvedHost, listConfiguredHosts, resolveHost } from '../ssh/sshConfig';

/** globalState: the hosts picked last, newest first (hostPicker.ts writes it). */
export const RECENT_HOSTS_KEY = 'tether.recentHosts';

export class SshHosts {
  constructor(
    private readonly globalState: Pick<vscode.Memento, 'get'>,
    private readonly log: Logger,
  ) {}

  /** Concrete Host aliases of ~/.ssh/config; none (logged) when it cannot be read. */
  configuredHosts(): string[] {
    try {
      return listConfiguredHosts(sshConfigOptions());
    } catch (error) {
      this.log.warn(`ssh config: ${(error as Error).message}`);
      return [];
    }
  }

  /** An alias or `user@host[:port]` through ~/.ssh/config; throws SshConfigError when it cannot. */
  resolve(label: string): ResolvedHost {
    return resolveHost(label, sshConfigOptions());
  }

  /** The hosts picked recently. */
  recentHosts(): string[] {
    return this.globalState.get<string[]>(RECENT_HOSTS_KEY, []).filter((label) => typeof label === 'string');
  }

  /** ssh config hosts and the recently used ones, for the Hosts view. */
  knownHosts(): string[] {
    return [...new Set([...this.configuredHosts(), ...this.recentHosts()])];
  }

  /** The listing's own target unless this device's alias of that label matches it exactly (logged when not). */
  resolveListed(listing: ListedHost): ListedHostResolution {
    const resolution = resolveListedHost(listing, sshConfigOptions());
    if (resolution.note) this.log.info(`host ${stripControls(listing.hostLabel)}: ${stripControls(resolution.note)}`);
    return resolution;
  }

  /** How to reach a session a manifest describes, even on a device without that Host entry. */
  hostFor(listing: ListedHost): ResolvedHost {
    return this.resolveListed(listing).host;
  }
}

export function sshConfigOptions(): { configPath: string; homeDir: string; localUser: string } {
  const homeDir = os.homedir();
  let localUser = process.env.USER ?? 'root';
  try {
    localUser = os.userInfo().username;
  } catch {
    /* keep $USER */
  }
  return { configPath: path.join(homeDir, '.ssh', 'config'), homeDir, localUser };
}
