/**
 * Cross-device session logic, free of VS Code: what "Live on other devices" lists, and whether this
 * device may be the last one using a session (docs/architecture.md, Closing and the last device).
 */
import type { SessionEntry, SyncBlob } from './blob';

export interface RemoteSlotView {
  readonly slotId: string;
  readonly deviceName: string;
  readonly blob: SyncBlob;
  readonly online?: boolean;
  readonly lastSeen?: number;
}

export interface LiveSession extends SessionEntry {
  readonly slotId: string;
  readonly deviceName: string;
}

export interface DeviceGroup {
  readonly slotId: string;
  readonly deviceName: string;
  readonly online?: boolean;
  readonly lastSeen?: number;
  /** Not seen for longer than tether.sync.staleDeviceDays: greyed, and it no longer blocks a close. */
  readonly stale?: boolean;
  readonly sessions: readonly LiveSession[];
}

/** Marks each group stale or not, and gives it the time it was last seen (presence or last write). */
export function withStaleness(groups: readonly DeviceGroup[], slots: readonly RemoteSlotView[], now: number, staleAfterMs: number | undefined): DeviceGroup[] {
  return groups.map((group) => {
    const slot = slots.find((candidate) => candidate.slotId === group.slotId);
    if (!slot) return group;
    return { ...group, lastSeen: slotLastSeen(slot, now), stale: isStaleSlot(slot, now, staleAfterMs) };
  });
}

/** Every tombstoned ID in any slot, ours included, with the device that ended it. */
export function tombstonedIds(slots: readonly RemoteSlotView[], ownTombstones: readonly { id: string }[] = []): Map<string, string> {
  const result = new Map<string, string>();
  for (const tombstone of ownTombstones) result.set(tombstone.id, 'this device');
  for (const slot of slots) for (const tombstone of slot.blob.tombstones) if (!result.has(tombstone.id)) result.set(tombstone.id, slot.deviceName);
  return result;
}

/**
 * The sessions in every other slot's latest blob, minus the tombstoned ones and the ones already open
 * here, grouped by device (devices that are switched off included), newest first.
 */
export function liveOnOtherDevices(
  slots: readonly RemoteSlotView[],
  ownSlotId: string,
  openHere: ReadonlySet<string>,
  ownTombstones: readonly { id: string }[] = [],
): DeviceGroup[] {
  const dead = tombstonedIds(slots, ownTombstones);
  // Our own manifest lists what this device's windows have open, including other windows.
  const ours = new Set(slots.find((slot) => slot.slotId === ownSlotId)?.blob.sessions.map((session) => session.id) ?? []);
  const groups: DeviceGroup[] = [];
  for (const slot of slots) {
    if (slot.slotId === ownSlotId) continue;
    const sessions = slot.blob.sessions
      .filter((session) => !dead.has(session.id) && !openHere.has(session.id) && !ours.has(session.id))
      .map((session) => ({ ...session, slotId: slot.slotId, deviceName: slot.deviceName }))
      .sort((a, b) => b.startedAt - a.startedAt);
    if (sessions.length > 0) groups.push({ slotId: slot.slotId, deviceName: slot.deviceName, online: slot.online, lastSeen: slot.lastSeen, sessions });
  }
  return groups.sort((a, b) => Number(b.online ?? false) - Number(a.online ?? false) || a.deviceName.localeCompare(b.deviceName));
}

/** When a device was last seen: now while online, else the later of presence and its last write. */
export function slotLastSeen(slot: RemoteSlotView, now: number): number {
  if (slot.online) return now;
  return Math.max(slot.lastSeen ?? 0, slot.blob.writtenAt);
}

/** A device not seen for longer than `staleAfterMs` is greyed and no longer blocks a close. */
export function isStaleSlot(slot: RemoteSlotView, now: number, staleAfterMs: number | undefined): boolean {
  return staleAfterMs !== undefined && now - slotLastSeen(slot, now) > staleAfterMs;
}

/** Devices (other slots) whose manifest lists a session; stale devices only when `staleAfterMs` is not given. */
export function devicesListing(slots: readonly RemoteSlotView[], ownSlotId: string, id: string, staleness?: { now: number; staleAfterMs?: number }): string[] {
  return slotsListing(slots, ownSlotId, id, staleness).map((slot) => slot.deviceName);
}

export function slotsListing(slots: readonly RemoteSlotView[], ownSlotId: string, id: string, staleness?: { now: number; staleAfterMs?: number }): RemoteSlotView[] {
  const dead = tombstonedIds(slots);
  if (dead.has(id)) return [];
  return slots.filter(
    (slot) => slot.slotId !== ownSlotId && slot.blob.sessions.some((session) => session.id === id) && !(staleness && isStaleSlot(slot, staleness.now, staleness.staleAfterMs)),
  );
}

export type SyncHealth = 'off' | 'connecting' | 'live' | 'offline' | 'error';

export interface LastDeviceInput {
  /** This device takes part in cross-device sessions. */
  crossDevice: boolean;
  /** Sync is set up (a key and a server); a single-device user has none. */
  syncConfigured: boolean;
  syncHealth: SyncHealth;
  /** When the remote state was last confirmed fresh by the server (ms), if ever. */
  remoteFreshAt: number | undefined;
  now: number;
  /** Older remote knowledge than this cannot clear a kill. */
  maxStalenessMs: number;
  slots: readonly RemoteSlotView[];
  ownSlotId: string;
  id: string;
  /** Other windows or workspaces of this device that list the session (DeviceSync.holders). */
  localHolders?: readonly string[];
  /** Devices not seen for longer no longer block a close (tether.sync.staleDeviceDays). */
  staleAfterMs?: number;
  /** With cross-device sessions off: what other devices listed when sync last ran. */
  lastKnown?: { savedAt: number; slots: readonly RemoteSlotView[] };
}

export type LastDeviceVerdict =
  | { readonly kill: true; readonly why: string }
  | { readonly kill: false; readonly why: string; readonly devices?: string[] };

/**
 * The manifest half of the last-device check. The host half (no other client attached) is made by
 * the kill command itself, atomically. Fail safe: when in doubt, close only detaches.
 */
export function manifestAllowsKill(input: LastDeviceInput): LastDeviceVerdict {
  const staleness = { now: input.now, staleAfterMs: input.staleAfterMs };
  if (input.localHolders && input.localHolders.length > 0) return { kill: false, why: `still open in ${input.localHolders.join(', ')}`, devices: [] };
  if (!input.crossDevice) {
    const known = input.lastKnown ? devicesListing(input.lastKnown.slots, input.ownSlotId, input.id, staleness) : [];
    if (known.length > 0) {
      return { kill: false, why: `cross-device sessions are off here, and ${listText(known)} listed it when sync last ran (${ago(input.lastKnown!.savedAt, input.now)})`, devices: known };
    }
    return { kill: true, why: 'cross-device sessions are off here; the host client check decides' };
  }
  if (!input.syncConfigured) return { kill: true, why: 'sync is not set up; the host client check decides' };
  if (input.syncHealth !== 'live') {
    const fresh = input.remoteFreshAt !== undefined && input.now - input.remoteFreshAt <= input.maxStalenessMs;
    if (!fresh) {
      const known = slotsListing(input.slots, input.ownSlotId, input.id, staleness);
      const seen = known.map((slot) => `${slot.deviceName} was last seen ${ago(slotLastSeen(slot, input.now), input.now)}`);
      const why = seen.length > 0 ? `sync is ${input.syncHealth} and ${listText(seen)}` : `sync is ${input.syncHealth}, so other devices' listings cannot be checked`;
      return { kill: false, why, devices: known.map((slot) => slot.deviceName) };
    }
  }
  const devices = devicesListing(input.slots, input.ownSlotId, input.id, staleness);
  if (devices.length > 0) return { kill: false, why: `still open on ${listText(devices)}`, devices };
  return { kill: true, why: 'no other device lists the session' };
}

/** "a", "a and b", "a, b and c" */
export function listText(items: readonly string[]): string {
  const unique = [...new Set(items)];
  return unique.length <= 1 ? (unique[0] ?? '') : `${unique.slice(0, -1).join(', ')} and ${unique[unique.length - 1]}`;
}

/** "5 min ago" style text for the tree view. */
export function ago(then: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) return 'just now';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 36) return `${hours} h ago`;
  return `${Math.round(hours / 24)} d ago`;
}

/** "34 days" style text for how long a device has not been seen. */
export function duration(ms: number): string {
  const minutes = Math.max(1, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.round(hours / 24)} days`;
}

/** Who uses a session that a host reports: this window, other devices (named), or nobody (an orphan). */
export function usedBy(id: string, openHere: ReadonlySet<string>, slots: readonly RemoteSlotView[], ownSlotId: string | undefined): string | undefined {
  if (openHere.has(id)) return 'open here';
  const others = ownSlotId === undefined ? [] : devicesListing(slots, ownSlotId, id);
  return others.length > 0 ? `open on ${[...new Set(others)].join(', ')}` : undefined;
}
