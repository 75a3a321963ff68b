import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { certificateAlgorithm, certificateProblem, parseCertificate, readCertificateFile } from '../../../src/ssh/certificates';

describe('OpenSSH user certificates', function () {
  this.timeout(30_000); // ssh-keygen on a busy machine
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-cert-unit-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'ca')]);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function certify(type: string, principals: string, validity: string): { key: string; cert: string } {
    const key = path.join(dir, `id_${type}_${principals.replace(/\W/g, '')}`);
    execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', key]);
    execFileSync('ssh-keygen', ['-q', '-s', path.join(dir, 'ca'), '-I', 'key id 7', '-n', principals, '-V', validity, `${key}.pub`]);
    return { key, cert: `${key}-cert.pub` };
  }

  for (const type of ['ed25519', 'ecdsa', 'rsa']) {
    it(`reads an ${type} certificate: the certified key, key id, principals and validity`, () => {
      const { key, cert } = certify(type, 'alice,deploy', '20300101:20300201');
      const parsed = readCertificateFile(cert);
      assert.ok(parsed);
      const [plainType, plainBase64] = fs.readFileSync(`${key}.pub`, 'utf8').split(' ');
      assert.equal(parsed.type, `${plainType}-cert-v01@openssh.com`);
      assert.equal(parsed.publicKey.toString('base64'), plainBase64, 'the plain key inside matches the key pair');
      assert.equal(parsed.keyId, 'key id 7');
      assert.deepEqual(parsed.principals, ['alice', 'deploy']);
      assert.equal(certificateProblem(parsed, 'alice', Date.UTC(2030, 0, 15)), undefined);
      assert.match(certificateProblem(parsed, 'alice', Date.UTC(2029, 0, 1)) ?? '', /not valid yet/);
      assert.match(certificateProblem(parsed, 'alice', Date.UTC(2031, 0, 1)) ?? '', /expired/);
      assert.match(certificateProblem(parsed, 'mallory', Date.UTC(2030, 0, 15)) ?? '', /not for user mallory/);
    });
  }

  it('offers RSA certificates with SHA-512 signatures, others as they are', () => {
    const rsa = readCertificateFile(certify('rsa', 'a', '+1h').cert)!;
    assert.deepEqual(certificateAlgorithm(rsa), { algorithm: 'rsa-sha2-512-cert-v01@openssh.com', hash: 'sha512' });
    const ed = readCertificateFile(certify('ed25519', 'b', '+1h').cert)!;
    assert.deepEqual(certificateAlgorithm(ed), { algorithm: 'ssh-ed25519-cert-v01@openssh.com' });
  });

  it('rejects host certificates, plain keys, truncated and garbage blobs', () => {
    const { key } = certify('ed25519', 'c', '+1h');
    execFileSync('ssh-keygen', ['-q', '-s', path.join(dir, 'ca'), '-h', '-I', 'host', '-n', 'h.example', `${key}.pub`]);
    assert.equal(readCertificateFile(`${key}-cert.pub`), undefined, 'host certificate');
    const plain = Buffer.from(fs.readFileSync(`${key}.pub`, 'utf8').split(' ')[1], 'base64');
    assert.equal(parseCertificate(plain), undefined);
    const good = readCertificateFile(certify('ed25519', 'd', '+1h').cert)!;
    for (let cut = 0; cut < good.blob.length; cut += 7) assert.equal(parseCertificate(good.blob.subarray(0, cut)), undefined, `cut at ${cut}`);
    assert.equal(parseCertificate(Buffer.from('garbage')), undefined);
    assert.equal(readCertificateFile(path.join(dir, 'missing-cert.pub')), undefined);
  });
});
