/**
 * OpenSSH user certificates (PROTOCOL.certkeys) with ssh2, which has no certificate support of its
 * own (mscdex/ssh2#551). Two pieces (docs/architecture.md, "Certificates"):
 * - patches/ssh2+1.17.0.patch: ssh2 writes the request's algorithm name into the signature too;
 *   for a certificate the signature must name the plain algorithm. Applied by patch-package.
 * - here: a certificate is offered as an identity of a small in-process agent (ssh2's BaseAgent),
 *   which ssh2 already drives through publickey authentication. The identity looks to ssh2 like the
 *   plain key but names the certificate's algorithm and sends the certificate blob; signing is done
 *   by the local private key, or by the ssh-agent that holds it.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { BaseAgent, ParsedKey } from 'ssh2';

const CERT_SUFFIX = '-cert-v01@openssh.com';

/** Fields that make up the public key inside a certificate, after the nonce (PROTOCOL.certkeys). */
const KEY_FIELDS: Record<string, { plain: string; fields: number }> = {
  'ssh-ed25519': { plain: 'ssh-ed25519', fields: 1 },
  'ssh-rsa': { plain: 'ssh-rsa', fields: 2 },
  'ecdsa-sha2-nistp256': { plain: 'ecdsa-sha2-nistp256', fields: 2 },
  'ecdsa-sha2-nistp384': { plain: 'ecdsa-sha2-nistp384', fields: 2 },
  'ecdsa-sha2-nistp521': { plain: 'ecdsa-sha2-nistp521', fields: 2 },
};

export interface Certificate {
  /** e.g. ssh-ed25519-cert-v01@openssh.com */
  type: string;
  blob: Buffer;
  /** The certified public key as a plain SSH key blob. */
  publicKey: Buffer;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
}

function reader(buffer: Buffer): { string(): Buffer; uint32(): number; uint64(): bigint; atEnd(): boolean } {
  let at = 0;
  const need = (n: number): void => {
    if (at + n > buffer.length) throw new Error('truncated certificate');
  };
  return {
    string() {
      need(4);
      const length = buffer.readUInt32BE(at);
      need(4 + length);
      const value = buffer.subarray(at + 4, at + 4 + length);
      at += 4 + length;
      return value;
    },
    uint32() {
      need(4);
      const value = buffer.readUInt32BE(at);
      at += 4;
      return value;
    },
    atEnd() {
      return at === buffer.length;
    },
    uint64() {
      need(8);
      const value = buffer.readBigUInt64BE(at);
      at += 8;
      return value;
    },
  };
}

function sshString(value: Buffer | string): Buffer {
  const data = Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

/** Parses a certificate blob; undefined for anything that is not a user certificate we can use. */
export function parseCertificate(blob: Buffer): Certificate | undefined {
  try {
    const read = reader(blob);
    const type = read.string().toString('latin1');
    if (!type.endsWith(CERT_SUFFIX)) return undefined;
    const base = KEY_FIELDS[type.slice(0, -CERT_SUFFIX.length)];
    if (!base) return undefined; // sk- (FIDO) certificates: see the README
    read.string(); // nonce
    const fields = Array.from({ length: base.fields }, () => read.string());
    read.uint64(); // serial
    if (read.uint32() !== 1) return undefined; // 1 = user certificate, 2 = host
    const keyId = read.string().toString('utf8');
    const principalsBlob = read.string();
    const principals: string[] = [];
    const inner = reader(principalsBlob);
    for (let left = principalsBlob.length; left > 0; ) {
      const principal = inner.string();
      principals.push(principal.toString('utf8'));
      left -= 4 + principal.length;
    }
    const validAfter = read.uint64();
    const validBefore = read.uint64();
    for (let field = 0; field < 5; field++) read.string(); // critical options, extensions, reserved, CA key, signature
    if (!read.atEnd()) return undefined;
    const publicKey = Buffer.concat([sshString(base.plain), ...fields.map(sshString)]);
    return { type, blob, publicKey, keyId, principals, validAfter, validBefore };
  } catch {
    return undefined;
  }
}

/** Reads an OpenSSH public certificate file (`<type> <base64> [comment]`). */
export function readCertificateFile(file: string): Certificate | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const [, base64] = text.trim().split(/\s+/);
  return base64 ? parseCertificate(Buffer.from(base64, 'base64')) : undefined;
}

/** What a certificate is offered as: RSA certificates sign with SHA-512, as OpenSSH prefers. */
export function certificateAlgorithm(certificate: Certificate): { algorithm: string; hash?: 'sha512' } {
  if (certificate.type === `ssh-rsa${CERT_SUFFIX}`) return { algorithm: `rsa-sha2-512${CERT_SUFFIX}`, hash: 'sha512' };
  return { algorithm: certificate.type };
}

/** Why a certificate cannot work now, or undefined if it is within its validity period. */
export function certificateProblem(certificate: Certificate, user: string, now = Date.now()): string | undefined {
  const seconds = BigInt(Math.floor(now / 1000));
  if (seconds < certificate.validAfter) return `certificate ${certificate.keyId} is not valid yet`;
  if (seconds >= certificate.validBefore) return `certificate ${certificate.keyId} expired`;
  if (certificate.principals.length > 0 && !certificate.principals.includes(user)) return `certificate ${certificate.keyId} is not for user ${user} (principals: ${certificate.principals.join(', ')})`;
  return undefined;
}

/** Who signs for a certificate: the private key here, or an ssh-agent holding it. */
export type CertificateSigner = { key: ParsedKey } | { agent: BaseAgent };

export interface OfferedCertificate {
  certificate: Certificate;
  signer: CertificateSigner;
  source: string;
}

/**
 * An ssh2 agent whose identities are certificates. ssh2 sends each identity's getPublicSSH() with
 * its `type` as the algorithm (made right for certificates by the ssh2 patch), and asks sign().
 */
export function certificateAgent(offered: OfferedCertificate[]): BaseAgent {
  const ssh2 = require('ssh2') as typeof import('ssh2');
  const identities = new Map<object, OfferedCertificate & { hash?: 'sha512'; plain: ParsedKey }>();
  for (const entry of offered) {
    const plain = ssh2.utils.parseKey(`${entry.certificate.publicKey.subarray(4, 4 + entry.certificate.publicKey.readUInt32BE(0)).toString('latin1')} ${entry.certificate.publicKey.toString('base64')}`);
    if (plain instanceof Error || Array.isArray(plain)) continue;
    const { algorithm, hash } = certificateAlgorithm(entry.certificate);
    // Inherits ssh2's private marks of a parsed key, so ssh2 takes it as one.
    const identity = Object.create(plain, {
      type: { value: algorithm },
      comment: { value: entry.source },
      getPublicSSH: { value: () => entry.certificate.blob },
    }) as ParsedKey;
    identities.set(identity, { ...entry, hash, plain });
  }
  class CertificateAgent extends ssh2.BaseAgent {
    override getIdentities(callback: (error: Error | undefined, keys?: ParsedKey[]) => void): void {
      callback(undefined, [...identities.keys()] as ParsedKey[]);
    }
    override sign(identity: ParsedKey, data: Buffer, options: unknown, callback?: (error?: Error, signature?: Buffer) => void): void {
      const done = (typeof options === 'function' ? options : callback) as (error?: Error, signature?: Buffer) => void;
      const entry = identities.get(identity);
      if (!entry) return done(new Error('unknown certificate identity'));
      if ('key' in entry.signer) {
        const signature = entry.signer.key.sign(data, entry.hash);
        return signature instanceof Error ? done(signature) : done(undefined, signature);
      }
      // The agent signs with the plain key it holds; the certificate only travels in the request.
      entry.signer.agent.sign(entry.plain, data, entry.hash ? { hash: entry.hash } : {}, (error?: Error | null, signature?: Buffer) => done(error ?? undefined, signature));
    }
  }
  return new CertificateAgent();
}

/**
 * The key blobs an ssh-agent lists, certificates included. ssh2's agent client drops certificates
 * (it cannot parse them), so this asks the agent itself: SSH_AGENTC_REQUEST_IDENTITIES over the
 * Unix socket or named pipe. Any failure is an empty list: the agent is then simply not used.
 */
export function agentKeyBlobs(socketPath: string, timeoutMs = 3000): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    const chunks: Buffer[] = [];
    const finish = (result: Buffer[]): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish([]), timeoutMs);
    socket.on('error', () => finish([]));
    socket.on('close', () => finish([]));
    socket.on('connect', () => socket.write(Buffer.from([0, 0, 0, 1, 11]))); // SSH_AGENTC_REQUEST_IDENTITIES
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const data = Buffer.concat(chunks);
      if (data.length < 4 || data.length < 4 + data.readUInt32BE(0)) return;
      try {
        const body = data.subarray(4, 4 + data.readUInt32BE(0));
        if (body[0] !== 12) return finish([]); // SSH_AGENT_IDENTITIES_ANSWER
        const read = reader(body.subarray(1));
        const count = read.uint32();
        const blobs: Buffer[] = [];
        for (let i = 0; i < count; i++) {
          blobs.push(Buffer.from(read.string()));
          read.string(); // comment
        }
        finish(blobs);
      } catch {
        finish([]);
      }
    });
  });
}
