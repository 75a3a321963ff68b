/** The "server never sees plaintext" check, shared by the file store and PostgreSQL tests. */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Api, findNeedles, newSlotId, newToken, type ServerProcess, TestCipher, testManifest } from './harness';
import { base32Encode } from '../../../src/common/sessionId';

export interface PrivacyRun {
  needles: string[];
  token: string;
}

/** Writes encrypted manifests through the server and returns what must never appear in storage. */
export async function writeSecretManifests(server: ServerProcess): Promise<PrivacyRun> {
  const cipher = new TestCipher();
  const token = newToken();
  const api = new Api(server.url, token);
  const hosts = [`prod-db-${randomBytes(3).toString('hex')}.internal.example`, `bastion-${randomBytes(3).toString('hex')}.corp.example`];
  const sessionIds = Array.from({ length: 4 }, () => base32Encode(randomBytes(16)));
  const manifests = new Map<string, string>();
  for (const slot of [newSlotId(), newSlotId()]) {
    let version: number | undefined;
    for (let seq = 1; seq <= 3; seq++) {
      const plaintext = testManifest(slot, seq, hosts, sessionIds);
      version = await api.write(slot, cipher.seal(plaintext), version);
      manifests.set(slot, plaintext);
    }
  }
  // The blobs round-trip: what the server hands back decrypts to what we wrote.
  const list = (await (await api.request('GET', '/v1/blobs')).json()) as { blobs: { slotId: string; data: string }[] };
  assert.equal(list.blobs.length, manifests.size);
  for (const blob of list.blobs) assert.equal(cipher.open(blob.data), manifests.get(blob.slotId));

  const needles = [...hosts, ...sessionIds, 'laptop-under-test', '/home/alice/project', token, Buffer.from(cipher.key).toString('base64')];
  // Control: the scanner does find these in plaintext, so a clean scan below means something.
  const plaintext = Buffer.from([...manifests.values()].join('\n'));
  assert.deepEqual(findNeedles(plaintext, [...hosts, ...sessionIds]), [...hosts, ...sessionIds]);
  return { needles, token };
}

export function assertNoPlaintext(stored: Buffer, run: PrivacyRun, where: string): void {
  assert.ok(stored.length > 0, `${where} is empty: nothing was scanned`);
  assert.deepEqual(findNeedles(stored, run.needles), [], `${where} holds plaintext or secrets`);
}
