import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { isEncryptedPrivateKey } from '../../../src/ssh/privateKeyFile';

describe('private key files: encrypted or not, from their own structure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tether-keyfile-'));
  const keygen = (name: string, args: string[]): Buffer => {
    const file = join(dir, name);
    execFileSync('ssh-keygen', ['-q', '-f', file, ...args]);
    return readFileSync(file);
  };

  it('reads the cipher of OpenSSH keys (ssh-keygen, with and without a passphrase)', () => {
    assert.equal(isEncryptedPrivateKey(keygen('plain_ed25519', ['-t', 'ed25519', '-N', ''])), false);
    assert.equal(isEncryptedPrivateKey(keygen('secret_ed25519', ['-t', 'ed25519', '-N', 'correct horse'])), true);
    assert.equal(isEncryptedPrivateKey(keygen('secret_ecdsa', ['-t', 'ecdsa', '-N', 'pass phrase'])), true);
  });

  it('reads PEM headers: traditional RSA with Proc-Type, and PKCS#8', () => {
    assert.equal(isEncryptedPrivateKey(keygen('plain_rsa_pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', ''])), false);
    assert.equal(isEncryptedPrivateKey(keygen('secret_rsa_pem', ['-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', 'pass phrase'])), true);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.equal(isEncryptedPrivateKey(Buffer.from(privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)), false);
    assert.equal(isEncryptedPrivateKey(Buffer.from(privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string)), true);
  });

  it('says no for what is not a key, or an OpenSSH body it cannot read', () => {
    assert.equal(isEncryptedPrivateKey(Buffer.from('not a key')), false);
    assert.equal(isEncryptedPrivateKey(Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n')), false, 'unreadable: skipped, not a passphrase prompt');
  });
});
