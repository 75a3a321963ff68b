import * as fs from 'node:fs';
import { quoteForMessage } from '../common/displayText';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { hostPatternFor, keyTypeOfBlob, parseKnownHosts, type KnownHostEntry } from './knownHosts';
import { ReasonError } from '../common/reasonError';

export class TrustStoreError extends ReasonError<'invalid-host' | 'invalid-key'> {
  override readonly name = 'TrustStoreError';
}

// Anything that could split a known_hosts line or act as a pattern would let a host name smuggle
// in trust for other hosts, so only plain names and addresses are stored.
const STORABLE_HOST = /^[A-Za-z0-9._:%-]+$/;

/**
 * Host keys the user accepted inside Tether, in known_hosts format. It is a separate file so that
 * Tether never writes to the user's own known_hosts. Every read goes to disk, so windows that
 * share the file see each other's additions.
 */
export class TrustStore {
  constructor(readonly filePath: string) {}

  entries(): KnownHostEntry[] {
    let text: string;
    try {
      text = fs.readFileSync(this.filePath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return parseKnownHosts(text);
  }

  add(host: string, port: number, keyBlob: Buffer): void {
    if (!STORABLE_HOST.test(host) || host.startsWith('-')) {
      throw new TrustStoreError('invalid-host', `cannot trust a key for host ${quoteForMessage(host)}: not a plain host name`);
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new TrustStoreError('invalid-host', `cannot trust a key for port ${port}`);
    }
    const keyType = keyTypeOfBlob(keyBlob);
    if (keyType === undefined) throw new TrustStoreError('invalid-key', 'cannot trust a malformed host key');

    const pattern = hostPatternFor(host.toLowerCase(), port);
    const keyBase64 = keyBlob.toString('base64');
    let existing = '';
    try {
      existing = fs.readFileSync(this.filePath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const already = parseKnownHosts(existing).some(
      (e) => e.marker === undefined && e.patterns === pattern && e.keyType === keyType && e.keyBase64 === keyBase64,
    );
    if (already) return;

    const prefix = existing === '' || existing.endsWith('\n') ? existing : `${existing}\n`;
    const dir = path.dirname(this.filePath);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Write a sibling temp file, fsync it and rename it over the store so a crash never leaves half a file.
    const temp = path.join(dir, `.${path.basename(this.filePath)}.${randomBytes(6).toString('hex')}.tmp`);
    const fd = fs.openSync(temp, 'wx', 0o600);
    try {
      fs.writeSync(fd, `${prefix}${pattern} ${keyType} ${keyBase64}\n`);
      fs.fsyncSync(fd);
    } catch (error) {
      fs.closeSync(fd);
      fs.rmSync(temp, { force: true });
      throw error;
    }
    fs.closeSync(fd);
    try {
      fs.renameSync(temp, this.filePath);
    } catch (error) {
      fs.rmSync(temp, { force: true });
      throw error;
    }
  }
}
