import * as fs from 'node:fs';
import * as os from 'node:os';
import { checkHostKey, fingerprintSha256, keyTypeOfBlob, parseKnownHosts, type KnownHostStatus } from './knownHosts';
import type { TrustStore } from './trustStore';

export interface HostKeyPromptInfo {
  label: string;
  host: string;
  port: number;
  keyType: string;
  fingerprint: string;
}

export interface HostKeyVerifierOptions {
  label: string;
  host: string;
  port: number;
  knownHostsFiles: string[];
  trustStore: TrustStore;
  confirmUnknown: (info: HostKeyPromptInfo) => Promise<boolean>;
  /** StrictHostKeyChecking for an unknown key: 'ask' (default) prompts; 'yes' refuses without
   * asking; 'accept-new' adds it to the trust store without asking. A changed key is refused in all. */
  strict?: 'yes' | 'accept-new' | 'ask';
  /** Told when a key was accepted under accept-new (for the log). */
  onAcceptedNew?: (info: HostKeyPromptInfo) => void;
  /** Returns a file's text, or undefined when it cannot be read. Defaults to the file system. */
  readFile?: (path: string) => string | undefined;
}

export class HostKeyError extends Error {
  constructor(
    readonly reason: 'changed' | 'revoked' | 'refused',
    readonly label: string,
    readonly expected: string[],
    readonly actual: string,
    message: string,
  ) {
    super(message);
    this.name = 'HostKeyError';
  }
  static is(error: unknown): error is HostKeyError {
    return error instanceof HostKeyError;
  }
}

export interface HostKeyCheck {
  verify(keyBlob: Buffer, callback: (ok: boolean) => void): void;
  /** Why the most recent verify() refused, or undefined if it accepted (or has not finished). */
  readonly failure: HostKeyError | undefined;
}

function readFileOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    // A missing or unreadable known_hosts file simply vouches for nothing, as in OpenSSH.
    return undefined;
  }
}

function tildePath(file: string): string {
  const home = os.homedir();
  return home && file.startsWith(`${home}/`) ? `~${file.slice(home.length)}` : file;
}

interface SourceResult {
  source: string; // where a user would go to fix it
  status: KnownHostStatus;
  knownFingerprints: string[];
}

/** Verifies a server's host key before authentication (docs/architecture.md, SSH); give `verify` to ssh2 as hostVerifier. */
export function createHostKeyCheck(options: HostKeyVerifierOptions): HostKeyCheck {
  const readFile = options.readFile ?? readFileOrUndefined;
  const address = options.host.includes(':') ? `[${options.host}]:${options.port}` : `${options.host}:${options.port}`;
  const where = `${options.label} (${address})`;
  let failure: HostKeyError | undefined;

  const refuse = (callback: (ok: boolean) => void, error: HostKeyError): void => {
    failure = error;
    callback(false);
  };

  const check = async (keyBlob: Buffer): Promise<HostKeyError | undefined> => {
    const actual = fingerprintSha256(keyBlob);
    const keyType = keyTypeOfBlob(keyBlob);
    if (keyType === undefined) {
      return new HostKeyError('refused', options.label, [], actual, `host key for ${where} is malformed; refusing to connect`);
    }
    const results: SourceResult[] = [];
    for (const file of options.knownHostsFiles) {
      const text = readFile(file);
      if (text === undefined) continue;
      results.push({ source: tildePath(file), ...checkHostKey(parseKnownHosts(text), options.host, options.port, keyBlob) });
    }
    results.push({
      source: `Tether's trust store (${tildePath(options.trustStore.filePath)})`,
      ...checkHostKey(options.trustStore.entries(), options.host, options.port, keyBlob),
    });

    const revoked = results.find((r) => r.status === 'revoked');
    if (revoked) {
      return new HostKeyError(
        'revoked',
        options.label,
        [],
        actual,
        `host key for ${where} (${actual}) is marked @revoked in ${revoked.source}; refusing to connect`,
      );
    }
    if (results.some((r) => r.status === 'match')) return undefined;
    const changed = results.filter((r) => r.status === 'mismatch');
    if (changed.length > 0) {
      const expected = [...new Set(changed.flatMap((r) => r.knownFingerprints))];
      return new HostKeyError(
        'changed',
        options.label,
        expected,
        actual,
        `host key for ${where} changed: expected ${expected.join(' or ')}, got ${actual}; ` +
          `if the change is expected, remove the old key from ${changed.map((r) => r.source).join(' and ')}`,
      );
    }

    const info: HostKeyPromptInfo = { label: options.label, host: options.host, port: options.port, keyType, fingerprint: actual };
    if (options.strict === 'yes') {
      return new HostKeyError(
        'refused',
        options.label,
        [],
        actual,
        `host key for ${where} (${keyType} ${actual}) is not known and StrictHostKeyChecking is yes; ` +
          'add it to your known_hosts to connect',
      );
    }
    let accepted: boolean;
    try {
      if (options.strict === 'accept-new') {
        accepted = true;
        options.onAcceptedNew?.(info);
      } else {
        accepted = await options.confirmUnknown(info);
      }
    } catch (error) {
      return new HostKeyError(
        'refused',
        options.label,
        [],
        actual,
        `host key for ${where} (${actual}) was not accepted: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    if (accepted !== true) {
      return new HostKeyError('refused', options.label, [], actual, `host key for ${where} (${actual}) was not accepted`);
    }
    // The user trusted this key; failing to remember it only means asking again next time.
    try {
      options.trustStore.add(options.host, options.port, keyBlob);
    } catch {
      /* keep the connection the user approved */
    }
    return undefined;
  };

  return {
    verify(keyBlob, callback) {
      failure = undefined;
      check(keyBlob).then(
        (error) => (error ? refuse(callback, error) : callback(true)),
        (error: unknown) =>
          refuse(
            callback,
            new HostKeyError(
              'refused',
              options.label,
              [],
              fingerprintSha256(keyBlob),
              `could not verify the host key for ${where}: ${error instanceof Error ? error.message : String(error)}`,
            ),
          ),
      );
    },
    get failure() {
      return failure;
    },
  };
}
