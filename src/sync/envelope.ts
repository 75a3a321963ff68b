import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { ReasonError } from '../common/reasonError';

/**
 * The encrypted envelope that the server stores for a slot (docs/architecture.md, Sync key, envelope and blob):
 *   version (1 byte) ‖ nonce (24 bytes) ‖ secretbox(JSON plaintext)
 * secretbox has no associated data, so the slot ID and seq live inside the plaintext and are
 * checked by the reader: a blob moved to another slot, replayed or rolled back is refused.
 */
export const ENVELOPE_VERSION = 1;
export const NONCE_BYTES = nacl.secretbox.nonceLength;
const HEADER_BYTES = 1 + NONCE_BYTES;
export const MIN_ENVELOPE_BYTES = HEADER_BYTES + nacl.secretbox.overheadLength;
/** Larger than any blob we write; an envelope beyond this is refused before decryption. */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;

export type EnvelopeErrorReason =
  | 'too-short'
  | 'too-large'
  | 'unsupported-version'
  | 'decrypt'
  | 'payload'
  | 'wrong-slot'
  | 'replay'
  | 'rollback';

export class EnvelopeError extends ReasonError<EnvelopeErrorReason> {
  override readonly name = 'EnvelopeError';
}

/** What the envelope binds: every plaintext carries these two fields. */
export interface EnvelopeBinding {
  readonly slotId: string;
  readonly seq: number;
}

export function sealEnvelope(encryptionKey: Uint8Array, plaintext: EnvelopeBinding & object): Uint8Array {
  const message = new Uint8Array(Buffer.from(JSON.stringify(plaintext), 'utf8'));
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const box = nacl.secretbox(message, nonce, encryptionKey);
  const out = new Uint8Array(HEADER_BYTES + box.length);
  out[0] = ENVELOPE_VERSION;
  out.set(nonce, 1);
  out.set(box, HEADER_BYTES);
  return out;
}

/**
 * Decrypts and checks the binding to `expectedSlotId`. Returns the parsed plaintext as `unknown`
 * apart from the two bound fields: the caller validates the rest (see blob.ts).
 * Never returns partial data: any failure is an EnvelopeError.
 */
export function openEnvelope(encryptionKey: Uint8Array, envelope: Uint8Array, expectedSlotId: string): EnvelopeBinding & Record<string, unknown> {
  if (envelope.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError('too-large', `envelope of ${envelope.length} bytes exceeds ${MAX_ENVELOPE_BYTES}`);
  if (envelope.length < MIN_ENVELOPE_BYTES) throw new EnvelopeError('too-short', `envelope of ${envelope.length} bytes is truncated`);
  if (envelope[0] !== ENVELOPE_VERSION) {
    throw new EnvelopeError('unsupported-version', `envelope version ${envelope[0]} is not supported (expected ${ENVELOPE_VERSION}); update Tether on this device`);
  }
  const nonce = envelope.subarray(1, HEADER_BYTES);
  const box = envelope.subarray(HEADER_BYTES);
  let message: Uint8Array | null;
  try {
    message = nacl.secretbox.open(box, nonce, encryptionKey);
  } catch {
    message = null;
  }
  if (!message) throw new EnvelopeError('decrypt', 'envelope failed authentication: it was tampered with or written with a different sync key');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(message).toString('utf8'));
  } catch {
    throw new EnvelopeError('payload', 'envelope plaintext is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new EnvelopeError('payload', 'envelope plaintext is not an object');
  const record = parsed as Record<string, unknown>;
  const slotId = Object.prototype.hasOwnProperty.call(record, 'slotId') ? record.slotId : undefined;
  const seq = Object.prototype.hasOwnProperty.call(record, 'seq') ? record.seq : undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new EnvelopeError('payload', 'envelope plaintext has no valid seq');
  if (slotId !== expectedSlotId) {
    throw new EnvelopeError('wrong-slot', `envelope stored under slot ${expectedSlotId} belongs to another slot; refusing a moved blob`);
  }
  return record as EnvelopeBinding & Record<string, unknown>;
}

/**
 * Remembers the highest seq accepted per slot, so that the server cannot replay an old blob or
 * roll a slot back. Survives restarts through `snapshot()`/`restore()`.
 */
export class SeqGuard {
  private readonly highest = new Map<string, number>();

  /** Throws EnvelopeError('replay' | 'rollback') unless `seq` is above every seq seen for the slot. */
  check(slotId: string, seq: number): void {
    const seen = this.highest.get(slotId);
    if (seen === undefined) return;
    if (seq === seen) throw new EnvelopeError('replay', `slot ${slotId} seq ${seq} was already seen`);
    if (seq < seen) throw new EnvelopeError('rollback', `slot ${slotId} went back from seq ${seen} to ${seq}; refusing a rolled-back blob`);
  }

  /** Records `seq` as accepted; call only after the blob has been fully validated. */
  accept(slotId: string, seq: number): void {
    const seen = this.highest.get(slotId);
    if (seen === undefined || seq > seen) this.highest.set(slotId, seq);
  }

  highestSeen(slotId: string): number | undefined {
    return this.highest.get(slotId);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.highest);
  }

  restore(snapshot: Record<string, number>): void {
    for (const [slotId, seq] of Object.entries(snapshot)) {
      if (Number.isSafeInteger(seq) && seq >= 0) this.accept(slotId, seq);
    }
  }
}
