/**
 * Bench-level instrumentation of ssh2 (nothing in src/ changes): counts TCP/SSH connects, exec
 * channels (each one is a round trip that starts a remote process) and shells, and names each exec
 * by what its wrapped script does. Installed once per process by patching ssh2's Client prototype,
 * which is exactly what ConnectionPool's connections call through `connection.client.exec`.
 */
import { Client } from 'ssh2';

export type ExecKind = 'detect' | 'create' | 'status' | 'capture' | 'attach' | 'kill' | 'list' | 'other';

export interface Counts {
  connects: number;
  exec: Record<string, number>;
  execTotal: number;
  shells: number;
}

let installed = false;
/** When set, every connect, handshake, exec request, channel open and channel close is stamped here. */
let timeline: { at: number; event: string }[] | undefined;

export function startTimeline(): void {
  timeline = [];
}

/** Events since startTimeline(), in ms relative to `origin` (performance.now()). */
export function takeTimeline(origin: number): string[] {
  const events = timeline ?? [];
  timeline = undefined;
  return events.map((e) => `${(e.at - origin).toFixed(1).padStart(7)} ms ${e.event}`);
}

function stamp(event: string): void {
  timeline?.push({ at: performance.now(), event });
}
let counts: Counts = fresh();

function fresh(): Counts {
  return { connects: 0, exec: {}, execTotal: 0, shells: 0 };
}

/** Decodes the script inside `sh -c 'eval "$(echo <base64> | base64 -d)"'`. */
export function decodeWrapped(command: string): string {
  const match = /echo ([A-Za-z0-9+/=]+) \| base64 -d/.exec(command);
  return match ? Buffer.from(match[1], 'base64').toString('utf8') : command;
}

export function classify(script: string): ExecKind {
  if (/echo "home=\$HOME"/.test(script)) return 'detect';
  // The one-exec attach script (attachStatus.ts) may create, check and replay too: it is an attach.
  if (/attach-session|screen .*-x/.test(script)) return 'attach';
  if (/new-session -d/.test(script)) return 'create';
  if (/capture-pane|hardcopy/.test(script)) return 'capture';
  if (/if-shell -F|kill-session/.test(script)) return 'kill';
  if (/has-session/.test(script)) return 'status';
  if (/list-sessions|list-panes/.test(script)) return 'list';
  return 'other';
}

export function installInstrumentation(): void {
  if (installed) return;
  installed = true;
  const proto = Client.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const connect = proto.connect;
  proto.connect = function (this: Client, ...args: unknown[]) {
    counts.connects += 1;
    stamp('ssh connect (TCP + handshake start)');
    this.once('ready', () => stamp('ssh ready (authenticated)'));
    return connect.apply(this, args);
  };
  const exec = proto.exec;
  proto.exec = function (this: Client, command: unknown, ...rest: unknown[]) {
    const kind = classify(decodeWrapped(String(command)));
    counts.exec[kind] = (counts.exec[kind] ?? 0) + 1;
    counts.execTotal += 1;
    stamp(`exec ${kind} requested`);
    const callback = rest[rest.length - 1];
    if (typeof callback === 'function') {
      rest[rest.length - 1] = (error: unknown, channel: { once(event: string, listener: () => void): void } | undefined) => {
        stamp(`exec ${kind} channel open${error ? ' (failed)' : ''}`);
        if (channel && kind !== 'attach') channel.once('close', () => stamp(`exec ${kind} finished`));
        if (channel && kind === 'attach') channel.once('data', () => stamp('attach: first output byte'));
        (callback as (...a: unknown[]) => void)(error, channel);
      };
    }
    return exec.call(this, command, ...rest);
  };
  const shell = proto.shell;
  proto.shell = function (this: Client, ...args: unknown[]) {
    counts.shells += 1;
    return shell.apply(this, args);
  };
}

/** Returns the counts since the last call and starts new ones. */
export function takeCounts(): Counts {
  const result = counts;
  counts = fresh();
  return result;
}
