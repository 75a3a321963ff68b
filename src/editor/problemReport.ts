/**
 * The text that "Tether: Report a Problem…" copies: versions, the host's multiplexers and OS, the
 * tmux mode and the last log lines, with secrets, host keys and user names redacted.
 * Pure: no vscode import, so the redaction is unit-tested on its own.
 */

/** What the report knows about one host; only what an earlier detection already found. */
export interface ReportHost {
  label: string;
  /** Whether a connection to it was open when the report was made. */
  connected: boolean;
  os?: string;
  tmux?: string;
  screen?: string;
  /** Why its capabilities are not known (e.g. "not connected"). */
  note?: string;
}

export interface ProblemReportInput {
  tetherVersion: string;
  vscodeVersion: string;
  /** e.g. "desktop" or "web" (vscode.env.uiKind), and the app name (Visual Studio Code, code-server). */
  appName: string;
  uiKind: string;
  /** vscode.env.remoteName, or undefined in a local window. */
  remoteName?: string;
  /** Where Tether's extension host runs: "local" (ui) or "remote" (workspace). */
  extensionSide: string;
  nodeVersion: string;
  /** This side's OS, e.g. "linux 6.1.0 x64". */
  platform: string;
  tmuxMode: string;
  multiplexer: string;
  syncMode: string;
  hosts: ReportHost[];
  logLines: string[];
  /** Names to hide wherever they appear: the local user, the users of known hosts. */
  userNames: string[];
}

export const REPORT_LOG_LINES = 80;

const PLACEHOLDER = {
  privateKey: '<private key redacted>',
  syncKey: '<sync key redacted>',
  token: '<redacted>',
  hostKey: '<host key redacted>',
  fingerprint: '<fingerprint redacted>',
  user: '<user>',
  hex: '<hex redacted>',
  base64: '<base64 redacted>',
};

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Letters and digits mixed, with a long run between slashes: base64, not a path. */
function looksEncoded(text: string): boolean {
  return /[A-Za-z]/.test(text) && /[0-9]/.test(text) && text.split('/').some((part) => part.length >= 24);
}

/**
 * Removes what must never leave the machine in a bug report. Errs on the side of hiding: a long
 * opaque string is taken for a secret even when it is not one.
 */
export function redact(text: string, userNames: readonly string[] = []): string {
  let out = text;
  // Private keys (PEM and OpenSSH), whole blocks; a block cut off by the log tail is cut to the end.
  out = out.replace(/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, PLACEHOLDER.privateKey);
  // Sync keys (tether1-xxxxxx-xxxxxx-…), also cut short.
  out = out.replace(/\btether1-[a-z2-7]+(?:-[a-z2-7]*)*/gi, PLACEHOLDER.syncKey);
  // Credentials inside URLs: scheme://user:password@host.
  out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, `$1${PLACEHOLDER.user}@`);
  // Authorization headers and bearer tokens.
  out = out.replace(/\b(authorization\s*[:=]\s*)(?:(bearer|basic)\s+)?\S+/gi, (_m, head: string, scheme?: string) => `${head}${scheme ? `${scheme} ` : ''}${PLACEHOLDER.token}`);
  out = out.replace(/\b(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${PLACEHOLDER.token}`);
  // key=value and key: value for secret-looking keys (passphrases, passwords, tokens, keys).
  out = out.replace(
    /\b((?:[a-z0-9_-]*[_-])?(?:passphrase|password|passwd|pwd|secret|token|apikey|api[_-]?key|sync[_-]?key|private[_-]?key|access[_-]?key|auth))(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)/gi,
    `$1$2${PLACEHOLDER.token}`,
  );
  // Public host and user keys: "ssh-ed25519 AAAA…", certificates, and any bare OpenSSH key blob.
  out = out.replace(/\b((?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-[a-z0-9-]+@openssh\.com)(?:-cert-v01@openssh\.com)?)\s+AAAA[A-Za-z0-9+/]+=*/g, `$1 ${PLACEHOLDER.hostKey}`);
  out = out.replace(/\bAAAA[A-Za-z0-9+/]{16,}=*/g, PLACEHOLDER.hostKey);
  // Fingerprints: SHA256:… (43 base64 characters) and colon-separated MD5.
  out = out.replace(/\bSHA256:[A-Za-z0-9+/]{20,}=*/g, `SHA256:${PLACEHOLDER.fingerprint}`);
  out = out.replace(/\b(?:MD5:)?[0-9a-f]{2}(?::[0-9a-f]{2}){15}\b/gi, PLACEHOLDER.fingerprint);
  // Long opaque strings: hex of 32+ characters, base64/base64url of 40+ with letters and digits.
  out = out.replace(/\b[0-9a-f]{32,}\b/gi, PLACEHOLDER.hex);
  out = out.replace(/[A-Za-z0-9+/_-]{40,}={0,2}/g, (match) => (looksEncoded(match) ? PLACEHOLDER.base64 : match));
  // User names: in user@host, in home folders, after "User" (ssh config), and every known name.
  out = out.replace(/(?<![\w.<>-])[A-Za-z_][\w.-]*(?=@(?!openssh\.com)[\w[])/g, PLACEHOLDER.user);
  out = out.replace(/(\/home\/|\/Users\/|\\Users\\)([^\s/\\:'"]+)/g, `$1${PLACEHOLDER.user}`);
  out = out.replace(/\b(User\s+|user[:=]\s*)(?!<user>)[A-Za-z_][\w.-]*/g, `$1${PLACEHOLDER.user}`);
  // A one-letter name would blank every "a" in the log; such names are caught by the patterns above.
  const names = [...new Set(userNames.map((name) => name.trim()).filter((name) => name.length > 1))].sort((a, b) => b.length - a.length);
  for (const name of names) out = out.replace(new RegExp(`(?<![\\w-])${escapeRegExp(name)}(?![\\w-])`, 'g'), PLACEHOLDER.user);
  return out;
}

function hostLine(host: ReportHost): string {
  const parts = [host.connected ? 'connected' : 'not connected'];
  if (host.os) parts.push(`OS ${host.os}`);
  if (host.tmux !== undefined) parts.push(host.tmux ? `tmux ${host.tmux}` : 'no tmux');
  if (host.screen !== undefined) parts.push(host.screen ? `screen ${host.screen}` : 'no screen');
  if (host.note) parts.push(host.note);
  return `- Host ${host.label}: ${parts.join('; ')}`;
}

/** The Markdown block the command copies. Everything that came from a host or the log is redacted. */
export function buildProblemReport(input: ProblemReportInput): string {
  const lines = [
    '### Tether problem report',
    '',
    `- Tether: ${input.tetherVersion}`,
    `- VS Code: ${input.vscodeVersion} (${input.appName}, ${input.uiKind} UI${input.remoteName ? `, remote window: ${input.remoteName}` : ', local window'})`,
    `- Tether runs on: the ${input.extensionSide} side`,
    `- Node: ${input.nodeVersion}`,
    `- OS: ${input.platform}`,
    `- tether.multiplexer: ${input.multiplexer}; tether.tmux.mode: ${input.tmuxMode}`,
    `- Sync: ${input.syncMode}`,
  ];
  if (input.hosts.length === 0) lines.push('- Host: none open in this window');
  for (const host of input.hosts) lines.push(redact(hostLine(host), input.userNames));
  const log = input.logLines.slice(-REPORT_LOG_LINES);
  lines.push('', `Last ${log.length} log lines (secrets, host keys and user names redacted):`, '', '```');
  // Redacted as one text, so a private key spread over several lines is caught whole.
  lines.push(log.length > 0 ? redact(log.join('\n'), input.userNames).replace(/```/g, "'''") : '(the log is empty)');
  lines.push('```', '');
  return lines.join('\n');
}
