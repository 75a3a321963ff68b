/**
 * What a private key file says about itself before it is parsed: whether it needs a passphrase.
 * Read from the file's own structure (OpenSSH's key format and PEM's headers), not from a parser's
 * error text.
 */

const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/** True when the key is stored encrypted (a passphrase is needed to use it). */
export function isEncryptedPrivateKey(data: Buffer): boolean {
  const text = data.toString('latin1');
  const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
  if (openssh) {
    // An unreadable body is no key at all: skipped, as it would be unencrypted.
    const cipher = opensshCipher(Buffer.from(openssh[1].replace(/\s+/g, ''), 'base64'));
    return cipher !== undefined && cipher !== 'none';
  }
  // PKCS#8 has its own label; the traditional PEM formats (RSA, EC, DSA) say so in a header.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text)) return true;
  return /-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\nProc-Type:\s*4,ENCRYPTED/.test(text);
}

/** The cipher named in an OpenSSH key (PROTOCOL.key: magic, then string ciphername). */
function opensshCipher(body: Buffer): string | undefined {
  if (body.length < OPENSSH_MAGIC.length + 4 || !body.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) return undefined;
  const length = body.readUInt32BE(OPENSSH_MAGIC.length);
  const start = OPENSSH_MAGIC.length + 4;
  if (length > 64 || start + length > body.length) return undefined;
  return body.subarray(start, start + length).toString('latin1');
}
