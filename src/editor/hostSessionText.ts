/**
 * What the Hosts view says about one session a host reported: who uses it (listings), what the host
 * knows (attached devices, a deliberate detach, the last device) and whether it is an orphan. No
 * vscode import: the view only renders these strings.
 */
import { ago } from '../sync/liveSessions';
import type { HostSession } from '../multiplexer/hostInventory';
import { hasMetadata } from '../multiplexer/sessionMetadata';
import { sessionName, shortSessionName } from '../common/sessionId';
import { ConnectError } from '../ssh/sshConnection';
import { HostKeyError } from '../ssh/hostKeyVerifier';
import { SshConfigError } from '../ssh/sshConfig';

/** A host's session with who lists it: "open here", "open on laptop", or undefined for none. */
export interface HostSessionRow extends HostSession {
  usedBy?: string;
}

export interface HostSessionText {
  label: string;
  description: string;
  tooltip: string;
  /** No listing names it and it carries no metadata: nothing explains why it exists. */
  orphan: boolean;
}

export function describeHostSession(row: HostSessionRow, host: string, now: number): HostSessionText {
  const meta = row.meta ?? {};
  const orphan = !row.usedBy && !hasMetadata(row.meta);
  const parts: string[] = [];
  if (row.usedBy) parts.push(row.usedBy);
  const named = row.clientDevices ?? [];
  if (named.length > 0) {
    const unnamed = row.attachedClients - named.length;
    const devices = [...new Set(named)].join(', ');
    const onHost = `attached on ${devices}${unnamed > 0 ? ` and ${unnamed} other client${unnamed === 1 ? '' : 's'}` : ''}`;
    // "open on laptop" from the listing and "attached on laptop" from the host say the same thing.
    if (row.usedBy !== `open on ${devices}` || unnamed > 0) parts.push(onHost);
  } else if (row.attachedClients > 0) {
    parts.push(`${row.attachedClients} attached`);
  } else if (meta.detachedBy) {
    parts.push(`detached from ${meta.detachedBy}${meta.detachedAt ? ` ${ago(meta.detachedAt, now)}` : ''}`);
  } else if (meta.device && !row.usedBy) {
    parts.push(`last used on ${meta.device}`);
  }
  if (orphan) parts.unshift('orphan: listed by no device');
  const created = row.createdAt ?? meta.createdAt;
  if (created) parts.push(`started ${ago(created, now)}`);
  const name = sessionName(row.id);
  const tooltip = [
    `${row.multiplexer} session ${name} on ${host}`,
    meta.title ? `Title: ${meta.title}` : undefined,
    meta.device ? `Last attached from: ${meta.device}` : undefined,
    meta.detachedBy ? `Detached by: ${meta.detachedBy}${meta.detachedAt ? ` (${new Date(meta.detachedAt).toISOString()})` : ''}` : undefined,
  ].filter(Boolean).join('\n');
  return { label: meta.title ?? `${shortSessionName(row.id)}…`, description: parts.join(' · '), tooltip, orphan };
}

export interface HostFailureText {
  /** Short, for the row's description. */
  description: string;
  /** The whole reason and what to do next, for the row's tooltip and the child row. */
  tooltip: string;
  /** The next step alone. */
  next: string;
}

const DESCRIPTION_MAX = 60;

export type HostFailureKind = 'unreachable' | 'host-key' | 'auth' | 'ssh-config' | 'other';

/** Why a host could not be listed: the error's message for people, its kind for the next step. */
export interface HostFailure {
  readonly message: string;
  readonly kind: HostFailureKind;
}

/** Socket errors that mean the host (or the way to it) is not there. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET']);

/** The kind of a failure, from the error's type and code, never from its text. */
export function hostFailure(error: unknown): HostFailure {
  const message = error instanceof Error ? error.message : String(error);
  return { message, kind: failureKind(error) };
}

function failureKind(error: unknown): HostFailureKind {
  if (ConnectError.is(error)) return error.reason === 'host-key' ? 'host-key' : error.reason === 'auth' ? 'auth' : 'unreachable';
  if (HostKeyError.is(error)) return 'host-key';
  if (SshConfigError.is(error)) return 'ssh-config';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return 'unreachable';
  return 'other';
}

const NEXT_STEP: Record<HostFailureKind, string> = {
  unreachable: 'Check that the host is up and reachable at the HostName and Port in ~/.ssh/config, then refresh the Hosts view.',
  'host-key': 'Compare the host key with the host\'s administrator before you trust it; Tether never changes known_hosts. Then refresh the Hosts view.',
  auth: 'Check the User, IdentityFile or agent for this host in ~/.ssh/config (try `ssh <host>` in a local terminal), then refresh the Hosts view.',
  'ssh-config': 'Fix the host\'s entry in ~/.ssh/config ("Tether: Open SSH Config"), then refresh the Hosts view.',
  other: 'Run "Tether: Show Log" for details, then refresh the Hosts view.',
};

/** What the Hosts view says about a host it could not list: why, and what to do next. */
export function describeHostFailure(failure: HostFailure): HostFailureText {
  const reason = failure.message.replace(/\s+/g, ' ').trim() || 'unknown error';
  const next = NEXT_STEP[failure.kind];
  const short = reason.length > DESCRIPTION_MAX ? `${reason.slice(0, DESCRIPTION_MAX - 1)}…` : reason;
  return { description: `cannot list: ${short}`, tooltip: `Tether could not list the sessions on this host: ${reason}\n\n${next}`, next };
}
