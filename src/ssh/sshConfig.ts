import * as fs from 'node:fs';
import { quoteForMessage } from '../common/displayText';
import * as os from 'node:os';
import * as path from 'node:path';
import { LineType, parse as parseSshConfigText, type Line, type Match } from 'ssh-config';
import { matchPatternList, wildcardMatch } from './knownHosts';
import { ReasonError } from '../common/reasonError';

/**
 * ~/.ssh/config resolution for Tether's connections (docs/architecture.md, SSH).
 *
 * The `ssh-config` package tokenizes the file (quoting, `=` separators, sections). Its own
 * compute() is not used: its `?` also matches nothing, it ignores Include, and it runs shell
 * commands (`Match exec`) and DNS lookups (CanonicalizeHostName) synchronously. Evaluation here
 * follows OpenSSH's readconf.c instead and is checked against `ssh -G` in the tests.
 */

export class SshConfigError extends ReasonError<'invalid-target' | 'proxy-loop' | 'unreadable'> {
  override readonly name = 'SshConfigError';
}

export interface HostTarget {
  user?: string;
  host: string;
  port?: number;
}

export interface ResolvedHost {
  /** What the user typed or the alias, e.g. "build-1" or "alice@10.0.0.5:2222". */
  label: string;
  hostName: string;
  user: string;
  port: number;
  /** Absolute paths in order; explicit ones, else the OpenSSH defaults. Existence is not checked. */
  identityFiles: string[];
  identitiesOnly: boolean;
  /** UserKnownHostsFile entries (default ~/.ssh/known_hosts and ~/.ssh/known_hosts2), absolute. */
  knownHostsFiles: string[];
  /** GlobalKnownHostsFile entries (default /etc/ssh/ssh_known_hosts and ssh_known_hosts2), absolute. */
  globalKnownHostsFiles?: string[];
  /** HostKeyAlias: the name to look host keys up under instead of hostName, when set. */
  hostKeyAlias?: string;
  /** ProxyCommand from the user's own config, %-tokens not yet expanded (proxyCommand.ts does it
   * with the final host values). Never taken from anything synced. */
  proxyCommand?: string;
  /** IdentityAgent as written after ~ and %-token expansion: 'none', 'SSH_AUTH_SOCK', '$VAR' or a
   * path. Unset: SSH_AUTH_SOCK, with the platform's fallbacks (agentSocket.ts). */
  identityAgent?: string;
  /** CertificateFile entries, absolute, in order. */
  certificateFiles?: string[];
  /** ForwardAgent: true/false, or a socket ('$VAR' or a path) to forward instead of the login agent.
   * Unset: the tether.forwardAgent setting decides. */
  forwardAgent?: boolean | string;
  /** ConnectTimeout in seconds: the TCP connect (or ProxyCommand start) and the server's first answer. */
  connectTimeoutSeconds?: number;
  /** ServerAliveInterval / ServerAliveCountMax; they override tether.keepaliveInterval for this host. */
  serverAliveIntervalSeconds?: number;
  serverAliveCountMax?: number;
  /** StrictHostKeyChecking; 'no' and 'off' are read as 'accept-new' (a changed key is always refused). */
  strictHostKeyChecking?: 'yes' | 'accept-new' | 'ask';
  /** Keywords this host's config sets that Tether does not honour (lower case), for one log line. */
  ignoredKeywords?: string[];
  /** Jump hosts in connection order, first hop first; each hop's own proxyJump is empty. */
  proxyJump: ResolvedHost[];
}

export interface SshConfigOptions {
  configText?: string;
  configPath?: string;
  homeDir: string;
  localUser: string;
}

const MAX_INCLUDE_DEPTH = 16; // OpenSSH's READCONF_MAX_DEPTH
const MAX_JUMP_DEPTH = 16;
const DEFAULT_IDENTITY_FILES = ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'];
const DEFAULT_KNOWN_HOSTS = ['~/.ssh/known_hosts', '~/.ssh/known_hosts2'];
const DEFAULT_GLOBAL_KNOWN_HOSTS = ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];

const HOST_NAME = /^[\p{L}\p{N}_.-]+$/u;
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?$/;
const USER_NAME = /^[\p{L}\p{N}_.@+\\-]+$/u;

/** Keywords Tether acts on (README "SSH config"). `identityfile` and `certificatefile` are
 * collected apart from the settings map; Host, Match and Include never reach it. */
export const HONOURED_KEYWORDS: ReadonlySet<string> = new Set([
  'hostname', 'user', 'port', 'identityfile', 'identitiesonly', 'certificatefile', 'identityagent',
  'userknownhostsfile', 'globalknownhostsfile', 'hostkeyalias', 'stricthostkeychecking',
  'proxycommand', 'proxyjump', 'forwardagent', 'connecttimeout', 'serveraliveinterval', 'serveralivecountmax',
]);

/** Keywords that change nothing a Tether tab could do differently, so the log does not mention
 * them: logging and display, OpenSSH's own connection sharing (Tether shares connections itself),
 * agent and keychain housekeeping, and parser directives. */
export const NOT_APPLICABLE_KEYWORDS: ReadonlySet<string> = new Set([
  'loglevel', 'visualhostkey', 'hashknownhosts', 'controlmaster', 'controlpath', 'controlpersist',
  'addkeystoagent', 'usekeychain', 'ignoreunknown', 'updatehostkeys', 'batchmode', 'escapechar',
]);

function invalidTarget(input: string, why: string): SshConfigError {
  return new SshConfigError('invalid-target', `invalid host ${quoteForMessage(input)}: ${why}`);
}

/**
 * Parses "host", "user@host:port", "user@[::1]:2222", "[::1]" (and ssh://user@host:port). Rejects
 * anything that could be read as an ssh option or shell syntax if it ever reached a command line.
 */
export function parseHostTarget(input: string): HostTarget {
  if (typeof input !== 'string' || input === '') throw invalidTarget(String(input), 'empty');
  if (/[\s\p{Cc}]/u.test(input)) throw invalidTarget(input, 'contains spaces or control characters');
  let rest = input;
  if (/^ssh:\/\//i.test(rest)) rest = rest.slice(6).replace(/\/$/, '');
  if (rest.startsWith('-')) throw invalidTarget(input, 'starts with "-"');

  let user: string | undefined;
  const at = rest.lastIndexOf('@'); // user names may contain '@', host names cannot
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === '' || user.startsWith('-') || !USER_NAME.test(user)) throw invalidTarget(input, 'bad user name');
  }

  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw invalidTarget(input, 'missing "]"');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw invalidTarget(input, 'unexpected text after "]"');
      portText = after.slice(1);
    }
    if (!IPV6.test(host) && !HOST_NAME.test(host)) throw invalidTarget(input, 'bad host name');
  } else {
    const colons = rest.split(':').length - 1;
    if (colons === 1) {
      [host, portText] = rest.split(':');
    } else {
      host = rest;
    }
    // Two or more colons without brackets can only be a bare IPv6 address.
    if (colons >= 2 ? !IPV6.test(host) : !HOST_NAME.test(host)) throw invalidTarget(input, 'bad host name');
  }
  if (host === '' || host.startsWith('-')) throw invalidTarget(input, 'bad host name');

  const target: HostTarget = { host };
  if (user !== undefined) target.user = user;
  if (portText !== undefined) {
    const port = parsePort(portText);
    if (port === undefined) throw invalidTarget(input, 'bad port');
    target.port = port;
  }
  return target;
}

function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** Resolves an alias or a typed user@host[:port]; a typed user or port overrides the config. */
export function resolveHost(labelOrTarget: string, options: SshConfigOptions): ResolvedHost {
  return resolveChain(labelOrTarget, new ConfigFiles(options), []);
}

/** Concrete Host aliases (no wildcards or negations), in file order, without duplicates. */
export function listConfiguredHosts(options: SshConfigOptions): string[] {
  const files = new ConfigFiles(options);
  const hosts: string[] = [];
  const walk = (lines: Line[], depth: number): void => {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      const key = line.param.toLowerCase();
      if (key === 'include') {
        for (const file of files.includeTargets(valuesOf(line), depth)) walk(files.load(file, depth + 1), depth + 1);
      } else if (key === 'host') {
        for (const pattern of valuesOf(line)) {
          if (!/[*?!]/.test(pattern) && !hosts.includes(pattern)) hosts.push(pattern);
        }
      }
      if ('config' in line) walk(line.config, depth);
    }
  };
  walk(files.main(), 0);
  return hosts;
}

/** The main config and its Include files, each read and parsed once per resolution. */
class ConfigFiles {
  private readonly cache = new Map<string, Line[]>();
  private mainLines: Line[] | undefined;

  constructor(readonly options: SshConfigOptions) {}

  main(): Line[] {
    if (this.mainLines === undefined) {
      const configPath = this.options.configPath ?? path.join(this.options.homeDir, '.ssh', 'config');
      const text = this.options.configText ?? readOptional(configPath) ?? '';
      this.mainLines = parseText(text, this.options.configPath ?? 'ssh config');
    }
    return this.mainLines;
  }

  load(file: string, depth: number): Line[] {
    if (depth > MAX_INCLUDE_DEPTH) throw new SshConfigError('unreadable', `${file}: Include nested too deeply (a loop?)`);
    let lines = this.cache.get(file);
    if (lines === undefined) {
      lines = parseText(readOptional(file) ?? '', file);
      this.cache.set(file, lines);
    }
    return lines;
  }

  /** Include arguments to existing files: `~` expanded, relative to ~/.ssh, `*` and `?` globbed. */
  includeTargets(args: string[], depth: number): string[] {
    if (depth >= MAX_INCLUDE_DEPTH) throw new SshConfigError('unreadable', 'Include nested too deeply (a loop?)');
    const files: string[] = [];
    for (const arg of args) {
      const expanded = expandTilde(arg, this.options.homeDir);
      const absolute = path.isAbsolute(expanded) ? expanded : path.join(this.options.homeDir, '.ssh', expanded);
      files.push(...globFiles(absolute));
    }
    return files;
  }
}

function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    // No config (or a missing Include) is normal; anything else OpenSSH would refuse too.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SshConfigError('unreadable', `cannot read ${file}: ${(error as Error).message}`);
  }
}

function parseText(text: string, source: string): Line[] {
  try {
    return parseSshConfigText(text);
  } catch (error) {
    throw new SshConfigError('unreadable', `cannot parse ${source}: ${(error as Error).message}`);
  }
}

function globFiles(pattern: string): string[] {
  if (!/[*?]/.test(pattern)) return isFile(pattern) ? [pattern] : [];
  const parts = pattern.split('/').filter((p, i) => p !== '' || i === 0);
  let candidates = [parts[0] === '' ? '/' : parts[0]];
  for (const part of parts.slice(1)) {
    const next: string[] = [];
    for (const dir of candidates) {
      if (!/[*?]/.test(part)) {
        next.push(path.join(dir, part));
        continue;
      }
      let names: string[];
      try {
        names = fs.readdirSync(dir).sort();
      } catch {
        continue;
      }
      for (const name of names) {
        if (name.startsWith('.') && !part.startsWith('.')) continue; // glob(3) hides dotfiles
        if (wildcardMatch(name, part)) next.push(path.join(dir, name));
      }
    }
    candidates = next;
  }
  return candidates.filter(isFile);
}

function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function valuesOf(line: Line): string[] {
  if (line.type !== LineType.DIRECTIVE) return [];
  return typeof line.value === 'string' ? [line.value] : line.value.map((v) => v.val);
}

function expandTilde(value: string, homeDir: string): string {
  if (value === '~') return homeDir;
  if (value.startsWith('~/')) return path.join(homeDir, value.slice(2));
  return value;
}

function positiveInt(value: string | undefined, keyword: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,7}$/.test(value)) throw new SshConfigError('unreadable', `ssh config: bad ${keyword} ${quoteForMessage(value)}`);
  return Number(value);
}

/** IdentityAgent / ForwardAgent socket values: keywords and `$VAR` stay as written (read from the
 * environment at connect time), anything else is a path. */
function agentValue(value: string, toPath: (value: string) => string): string {
  if (value.toLowerCase() === 'none') return 'none';
  if (value === 'SSH_AUTH_SOCK' || value.startsWith('$')) return value;
  // Windows named pipes (\\.\pipe\…) are not file paths to resolve against home.
  if (value.startsWith('\\\\')) return value;
  return toPath(value);
}

/** One pass of OpenSSH percent_expand; unknown tokens are left as written. */
function expandTokens(value: string, tokens: Record<string, string>): string {
  return value.replace(/%(.)/g, (whole, key: string) => (key === '%' ? '%' : (tokens[key] ?? whole)));
}

/** Values collected the OpenSSH way: the first obtained value of each keyword wins. */
interface Evaluation {
  host: string; // what Host lines match against
  readonly originalHost: string;
  hostName: string;
  user: string;
  readonly localUser: string;
  finalPass: boolean;
  wantFinalPass: boolean;
  readonly settings: Map<string, string[]>;
  readonly identityFiles: string[];
  readonly certificateFiles: string[];
}

function evaluate(target: HostTarget, files: ConfigFiles): Evaluation {
  const { localUser } = files.options;
  const state: Evaluation = {
    host: target.host,
    originalHost: target.host,
    hostName: target.host.toLowerCase(),
    user: target.user ?? localUser,
    localUser,
    finalPass: false,
    wantFinalPass: false,
    settings: new Map(),
    identityFiles: [],
    certificateFiles: [],
  };
  // A typed user is a command-line option in OpenSSH terms: it beats the config and Match sees it.
  if (target.user !== undefined) state.settings.set('user', [target.user]);
  applyLines(files.main(), true, 0, state, files);
  if (state.wantFinalPass) {
    // `Match final`/`canonical`: OpenSSH reparses with the resolved name; earlier values still win.
    state.finalPass = true;
    state.host = state.hostName;
    applyLines(files.main(), true, 0, state, files);
  }
  return state;
}

function applyLines(lines: Line[], active: boolean, depth: number, state: Evaluation, files: ConfigFiles): void {
  for (const line of lines) {
    if (line.type !== LineType.DIRECTIVE) continue;
    const key = line.param.toLowerCase();
    if (key === 'host' && 'config' in line) {
      applyLines(line.config, active && hostLineMatches(valuesOf(line), state.host), depth, state, files);
    } else if (key === 'match' && 'config' in line) {
      applyLines(line.config, active && matchLineMatches(line as Match, state), depth, state, files);
    } else if (key === 'include') {
      // Included files inherit whether the enclosing Host/Match block applies (OpenSSH NEVERMATCH).
      for (const file of files.includeTargets(valuesOf(line), depth)) {
        applyLines(files.load(file, depth + 1), active, depth + 1, state, files);
      }
    } else if (active) {
      applySetting(key, valuesOf(line), state);
    }
  }
}

function applySetting(key: string, values: string[], state: Evaluation): void {
  if (values.length === 0) return;
  if (key === 'identityfile') {
    state.identityFiles.push(values[0]);
    return;
  }
  if (key === 'certificatefile') {
    state.certificateFiles.push(values[0]);
    return;
  }
  if (state.settings.has(key)) return;
  // ProxyJump and ProxyCommand exclude each other; whichever comes first wins.
  if ((key === 'proxyjump' && state.settings.has('proxycommand')) || (key === 'proxycommand' && state.settings.has('proxyjump'))) return;
  if (key === 'port' && parsePort(values[0]) === undefined) {
    throw new SshConfigError('unreadable', `ssh config: bad Port ${quoteForMessage(values[0])}`);
  }
  state.settings.set(key, values);
  if (key === 'hostname') state.hostName = expandTokens(values[0], { h: state.originalHost }).toLowerCase();
  if (key === 'user') state.user = values[0];
}

function hostLineMatches(patterns: string[], host: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    // Host patterns are single patterns compared as written, unlike Match's comma lists.
    if (wildcardMatch(host, negated ? pattern.slice(1) : pattern)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function matchLineMatches(line: Match, state: Evaluation): boolean {
  for (const [rawKey, rawValue] of Object.entries(line.criteria)) {
    const negated = rawKey.startsWith('!');
    const key = (negated ? rawKey.slice(1) : rawKey).toLowerCase();
    const value = typeof rawValue === 'string' ? rawValue : rawValue.map((v) => v.val).join(',');
    let result: boolean;
    switch (key) {
      case 'all':
        result = true;
        break;
      case 'canonical':
      case 'final':
        if (!state.finalPass) state.wantFinalPass = true;
        result = state.finalPass;
        break;
      case 'host':
        result = matchPatternList(state.hostName.toLowerCase(), value.toLowerCase());
        break;
      case 'originalhost':
        result = matchPatternList(state.originalHost.toLowerCase(), value.toLowerCase());
        break;
      case 'user':
        result = matchPatternList(state.user, value);
        break;
      case 'localuser':
        result = matchPatternList(state.localUser, value);
        break;
      default:
        // exec, localnetwork, tagged…: never run commands from the extension host; the block is skipped.
        return false;
    }
    if (result === negated) return false;
  }
  return true;
}

function resolveChain(input: string, files: ConfigFiles, chain: string[]): ResolvedHost {
  const target = parseHostTarget(input);
  if (chain.includes(target.host) || chain.length >= MAX_JUMP_DEPTH) {
    throw new SshConfigError('proxy-loop', `ProxyJump loop: ${[...chain, target.host].join(' -> ')}`);
  }
  const resolved = resolveOne(input, target, files);
  const spec = resolved.jumpSpec;
  if (spec === undefined) return resolved.host;

  const hops = spec.split(',');
  for (const hop of hops) {
    if (hop === '') throw new SshConfigError('invalid-target', `${quoteForMessage(input)}: empty hop in ProxyJump ${quoteForMessage(spec)}`);
  }
  // OpenSSH runs `ssh -J <hops but last> -W … <last hop>`, so only the first hop's own
  // ProxyJump applies; the later hops' are overridden by the hops before them.
  const first = resolveChain(hops[0], files, [...chain, target.host]);
  const proxyJump: ResolvedHost[] = [...first.proxyJump, { ...first, proxyJump: [] }];
  for (const hop of hops.slice(1)) {
    const hopTarget = parseHostTarget(hop);
    if (hopTarget.host === target.host || chain.includes(hopTarget.host)) {
      throw new SshConfigError('proxy-loop', `ProxyJump loop: ${[...chain, target.host, hopTarget.host].join(' -> ')}`);
    }
    proxyJump.push(resolveOne(hop, hopTarget, files).host);
  }
  return { ...resolved.host, proxyJump };
}

function resolveOne(label: string, target: HostTarget, files: ConfigFiles): { host: ResolvedHost; jumpSpec?: string } {
  const { homeDir, localUser } = files.options;
  const state = evaluate(target, files);
  const first = (key: string): string | undefined => state.settings.get(key)?.[0];

  const hostName = state.hostName;
  const user = target.user ?? first('user') ?? localUser;
  const port = target.port ?? parsePort(first('port') ?? '22') ?? 22;
  const tokens: Record<string, string> = {
    d: homeDir,
    u: localUser,
    h: hostName,
    r: user,
    p: String(port),
    n: target.host,
    l: os.hostname(),
    L: os.hostname().split('.')[0],
  };
  const toPath = (value: string): string => {
    const expanded = expandTilde(expandTokens(value, tokens), homeDir);
    // ssh would read a relative path from its working directory, which for a terminal is usually home.
    return path.resolve(homeDir, expanded);
  };
  const pathList = (values: string[] | undefined, defaults: string[]): string[] => {
    const list = values ?? defaults;
    if (list.length === 1 && list[0].toLowerCase() === 'none') return [];
    return [...new Set(list.map(toPath))];
  };

  const explicit = state.identityFiles;
  const identityFiles = [
    ...new Set((explicit.length > 0 ? explicit : DEFAULT_IDENTITY_FILES).filter((f) => f.toLowerCase() !== 'none').map(toPath)),
  ];
  const host: ResolvedHost = {
    label,
    hostName,
    user,
    port,
    identityFiles,
    identitiesOnly: /^(yes|true)$/i.test(first('identitiesonly') ?? ''),
    knownHostsFiles: pathList(state.settings.get('userknownhostsfile'), DEFAULT_KNOWN_HOSTS),
    globalKnownHostsFiles: pathList(state.settings.get('globalknownhostsfile'), DEFAULT_GLOBAL_KNOWN_HOSTS),
    proxyJump: [],
  };
  const alias = first('hostkeyalias');
  if (alias !== undefined && alias.toLowerCase() !== 'none') host.hostKeyAlias = alias;
  const proxyCommand = state.settings.get('proxycommand')?.join(' ');
  if (proxyCommand !== undefined && proxyCommand.toLowerCase() !== 'none') host.proxyCommand = proxyCommand;

  const agent = first('identityagent');
  if (agent !== undefined) host.identityAgent = agentValue(agent, toPath);
  const certificates = state.certificateFiles.filter((f) => f.toLowerCase() !== 'none').map(toPath);
  if (certificates.length > 0) host.certificateFiles = [...new Set(certificates)];
  const forward = first('forwardagent');
  if (forward !== undefined) host.forwardAgent = /^(yes|true)$/i.test(forward) ? true : /^(no|false)$/i.test(forward) ? false : agentValue(forward, toPath);
  const connectTimeout = positiveInt(first('connecttimeout'), 'ConnectTimeout');
  if (connectTimeout !== undefined && connectTimeout > 0) host.connectTimeoutSeconds = connectTimeout;
  const aliveInterval = positiveInt(first('serveraliveinterval'), 'ServerAliveInterval');
  if (aliveInterval !== undefined) host.serverAliveIntervalSeconds = aliveInterval;
  const aliveCount = positiveInt(first('serveralivecountmax'), 'ServerAliveCountMax');
  if (aliveCount !== undefined) host.serverAliveCountMax = aliveCount;
  const strict = first('stricthostkeychecking')?.toLowerCase();
  if (strict !== undefined) {
    if (/^(yes|true)$/.test(strict)) host.strictHostKeyChecking = 'yes';
    else if (/^(accept-new|no|off|false)$/.test(strict)) host.strictHostKeyChecking = 'accept-new';
    else if (strict === 'ask') host.strictHostKeyChecking = 'ask';
    else throw new SshConfigError('unreadable', `ssh config: bad StrictHostKeyChecking ${quoteForMessage(strict)}`);
  }
  const ignored = [...state.settings.keys()].filter((key) => !HONOURED_KEYWORDS.has(key) && !NOT_APPLICABLE_KEYWORDS.has(key));
  if (ignored.length > 0) host.ignoredKeywords = ignored.sort();
  const jump = first('proxyjump');
  return jump === undefined || jump.toLowerCase() === 'none' ? { host } : { host, jumpSpec: jump };
}
