import { readFileSync } from 'node:fs';
import type { AuthenticationType, AuthHandlerMiddleware, KeyboardInteractiveCallback, NextAuthHandler, ParsedKey, Prompt } from 'ssh2';
import {
  agentKeyBlobs, certificateAgent, certificateProblem, parseCertificate, readCertificateFile, type Certificate, type OfferedCertificate,
} from './certificates';
import type { ResolvedHost } from './sshConfig';
import { isEncryptedPrivateKey } from './privateKeyFile';

/** How the connection layer asks the user for secrets. The VS Code layer backs it with input boxes
 * and SecretStorage; tests back it with fixed answers. Returning undefined means "cancelled". */
export interface AuthPrompter {
  keyPassphrase(keyPath: string, attempt: number): Promise<string | undefined>;
  /** Called once a passphrase worked, so the prompter can offer to keep it. */
  passphraseAccepted?(keyPath: string, passphrase: string): void;
  password(label: string, user: string, attempt: number): Promise<string | undefined>;
  passwordAccepted?(label: string, user: string, password: string): void;
  keyboardInteractive(label: string, name: string, instructions: string, prompts: readonly Prompt[]): Promise<string[] | undefined>;
}

/** A key file read and, if encrypted, decrypted once (bcrypt KDF rounds are slow on a busy machine). */
type LoadedKey = { data: Buffer; passphrase?: string; parsed: ParsedKey };
type Method =
  | { type: 'agent-certificates' }
  | { type: 'agent' }
  | { type: 'publickey'; keyPath: string; loaded?: LoadedKey }
  | { type: 'keyboard-interactive' }
  | { type: 'password' };

export interface AuthPlan {
  handler: AuthHandlerMiddleware;
  /** The secret that worked, if one was typed; reported once the connection is ready. */
  onReady(): void;
  describeFailure(): string;
}

/**
 * Builds ssh2's authHandler for a host: ssh-agent, then each identity file (asking for passphrases
 * of encrypted keys), then keyboard-interactive, then password, as OpenSSH orders them.
 * `agent` is what agentSocket.chooseAgent picked (a socket or pipe path, 'pageant', or none).
 */
export function createAuthPlan(host: ResolvedHost, prompter: AuthPrompter, agent: string | undefined): AuthPlan {
  const methods: Method[] = [];
  // Certificates the agent holds (or CertificateFiles whose key it holds) come first, as OpenSSH
  // lists them among the agent's identities; ssh2's own agent method only offers plain keys.
  if (agent && agent !== 'pageant' && !host.identitiesOnly) methods.push({ type: 'agent-certificates' });
  if (agent && !host.identitiesOnly) methods.push({ type: 'agent' });
  for (const keyPath of host.identityFiles) methods.push({ type: 'publickey', keyPath });
  methods.push({ type: 'keyboard-interactive' }, { type: 'password' });

  const tried: string[] = [];
  const skipped: string[] = [];
  let pending: (() => void) | undefined;
  let passwordAttempts = 0;

  const next = async (methodsLeft: AuthenticationType[] | null): Promise<unknown> => {
    while (methods.length > 0) {
      const method = methods.shift()!;
      // Agent identities and certificates are publickey authentication on the wire.
      const wire: AuthenticationType = method.type === 'agent' || method.type === 'agent-certificates' ? 'publickey' : method.type;
      if (methodsLeft && !methodsLeft.includes(wire)) continue;
      switch (method.type) {
        case 'agent-certificates': {
          const offered = await agentHeldCertificates(host, agent!, skipped);
          if (offered.length === 0) continue;
          tried.push(`ssh-agent certificates (${offered.map((o) => o.source).join(', ')})`);
          return { type: 'agent', username: host.user, agent: certificateAgent(offered) };
        }
        case 'agent':
          tried.push('ssh-agent');
          return { type: 'agent', username: host.user, agent };
        case 'publickey': {
          const key = method.loaded ?? (await loadKey(method.keyPath, prompter));
          if (!key) continue;
          if (!method.loaded) {
            // A certificate for this key (beside it, or a CertificateFile) goes first, then the key alone.
            const offered = localCertificates(host, method.keyPath, key, skipped);
            if (offered.length > 0) {
              methods.unshift({ type: 'publickey', keyPath: method.keyPath, loaded: key });
              tried.push(`certificate ${offered.map((o) => o.source).join(', ')}`);
              pending = key.passphrase ? () => prompter.passphraseAccepted?.(method.keyPath, key.passphrase!) : undefined;
              return { type: 'agent', username: host.user, agent: certificateAgent(offered) };
            }
          }
          tried.push(`key ${method.keyPath}`);
          pending = key.passphrase ? () => prompter.passphraseAccepted?.(method.keyPath, key.passphrase!) : undefined;
          return { type: 'publickey', username: host.user, key: key.parsed };
        }
        case 'keyboard-interactive':
          tried.push('keyboard-interactive');
          return {
            type: 'keyboard-interactive',
            username: host.user,
            prompt: (name: string, instructions: string, _lang: string, prompts: Prompt[], finish: KeyboardInteractiveCallback) => {
              if (prompts.length === 0) return finish([]);
              prompter.keyboardInteractive(host.label, name, instructions, prompts).then(
                (answers) => finish(answers ?? []),
                () => finish([]),
              );
            },
          };
        case 'password': {
          passwordAttempts += 1;
          const password = await prompter.password(host.label, host.user, passwordAttempts).catch(() => undefined);
          if (password === undefined) continue;
          tried.push('password');
          pending = () => prompter.passwordAccepted?.(host.label, host.user, password);
          // Offer a second try after a wrong password, as OpenSSH does (up to 3).
          if (passwordAttempts < 3) methods.unshift({ type: 'password' });
          return { type: 'password', username: host.user, password };
        }
      }
    }
    return false;
  };

  const handler = (methodsLeft: AuthenticationType[] | null, _partial: boolean | null, callback: NextAuthHandler): void => {
    pending = undefined;
    next(methodsLeft).then(
      (auth) => callback(auth as Parameters<NextAuthHandler>[0]),
      () => callback(false as unknown as Parameters<NextAuthHandler>[0]),
    );
  };

  return {
    handler: handler as unknown as AuthHandlerMiddleware,
    onReady: () => pending?.(),
    describeFailure: () =>
      `authentication as ${host.user} failed (tried: ${tried.join(', ') || 'nothing usable'})${skipped.length > 0 ? `; not offered: ${skipped.join('; ')}` : ''}`,
  };
}

/** Certificates to offer with a loaded identity file: `<key>-cert.pub` and matching CertificateFiles. */
function localCertificates(host: ResolvedHost, keyPath: string, key: LoadedKey, skipped: string[]): OfferedCertificate[] {
  const parsed = key.parsed;
  const publicKey = parsed.getPublicSSH();
  const offered: OfferedCertificate[] = [];
  for (const file of [`${keyPath}-cert.pub`, ...(host.certificateFiles ?? [])]) {
    const certificate = readCertificateFile(file);
    if (!certificate || !certificate.publicKey.equals(publicKey) || offered.some((o) => o.certificate.blob.equals(certificate.blob))) continue;
    const problem = certificateProblem(certificate, host.user);
    if (problem) skipped.push(`${file}: ${problem}`);
    else offered.push({ certificate, signer: { key: parsed }, source: file });
  }
  return offered;
}

/** Certificates the agent lists, and CertificateFiles whose private key the agent holds. */
async function agentHeldCertificates(host: ResolvedHost, agent: string, skipped: string[]): Promise<OfferedCertificate[]> {
  const blobs = await agentKeyBlobs(agent);
  if (blobs.length === 0) return [];
  const { createAgent } = require('ssh2') as typeof import('ssh2');
  const signer = { agent: createAgent(agent) };
  const offered: OfferedCertificate[] = [];
  const consider = (certificate: Certificate | undefined, source: string): void => {
    if (!certificate || offered.some((o) => o.certificate.blob.equals(certificate.blob))) return;
    const problem = certificateProblem(certificate, host.user);
    if (problem) skipped.push(`${source}: ${problem}`);
    else offered.push({ certificate, signer, source });
  };
  for (const blob of blobs) consider(parseCertificate(blob), `agent certificate`);
  for (const file of host.certificateFiles ?? []) {
    const certificate = readCertificateFile(file);
    if (certificate && blobs.some((blob) => blob.equals(certificate.publicKey))) consider(certificate, file);
  }
  return offered;
}

async function loadKey(keyPath: string, prompter: AuthPrompter): Promise<LoadedKey | undefined> {
  let data: Buffer;
  try {
    data = readFileSync(keyPath);
  } catch {
    return undefined; // A default identity that does not exist is simply skipped, as OpenSSH does.
  }
  // ssh2 loads on first use, not at activation (it is most of the bundle's start-up cost).
  const { utils } = require('ssh2') as typeof import('ssh2');
  const parsed = utils.parseKey(data);
  if (!(parsed instanceof Error)) return Array.isArray(parsed) ? undefined : { data, parsed };
  if (!isEncryptedPrivateKey(data)) return undefined;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const passphrase = await prompter.keyPassphrase(keyPath, attempt).catch(() => undefined);
    if (passphrase === undefined) return undefined;
    const decrypted = utils.parseKey(data, passphrase);
    if (!(decrypted instanceof Error) && !Array.isArray(decrypted)) return { data, passphrase, parsed: decrypted };
  }
  return undefined;
}
