import type { SessionEntry, Tombstone } from './blob';
import type { RemoteState } from './syncClient';

/** One device's row in "Live on other devices". */
export interface DeviceSessions {
  readonly slotId: string;
  readonly deviceName: string;
  readonly online?: boolean;
  readonly lastSeen?: number;
  /** Newest first. */
  readonly sessions: readonly SessionEntry[];
}

/**
 * "Live on other devices" (DESIGN §4): every other slot's sessions, minus the ones any slot (or
 * this device) has tombstoned, minus the ones already open here, grouped by device. A session that
 * several devices list appears under each of them, since each of those devices has it attached.
 */
export function liveOnOtherDevices(
  remote: RemoteState,
  local: { readonly openSessionIds: Iterable<string>; readonly tombstones?: Iterable<Tombstone> },
): DeviceSessions[] {
  const hidden = new Set<string>(local.openSessionIds);
  for (const tombstone of local.tombstones ?? []) hidden.add(tombstone.id);
  for (const slot of remote.slots) for (const tombstone of slot.blob.tombstones) hidden.add(tombstone.id);
  const groups: DeviceSessions[] = [];
  for (const slot of remote.slots) {
    const sessions = slot.blob.sessions.filter((s) => !hidden.has(s.id)).sort((a, b) => b.startedAt - a.startedAt);
    if (sessions.length === 0) continue;
    groups.push({
      slotId: slot.slotId,
      deviceName: slot.deviceName,
      ...(slot.online !== undefined ? { online: slot.online } : {}),
      ...(slot.lastSeen !== undefined ? { lastSeen: slot.lastSeen } : {}),
      sessions,
    });
  }
  return groups.sort((a, b) => a.deviceName.localeCompare(b.deviceName) || a.slotId.localeCompare(b.slotId));
}

/**
 * The other slots whose latest blob lists `sessionId`: the manifest half of the last-device check
 * before a kill (DESIGN §2). Non-empty means another device still uses the session, so close must
 * only detach.
 */
export function otherSlotsListing(remote: RemoteState, sessionId: string): string[] {
  return remote.slots.filter((slot) => slot.blob.sessions.some((s) => s.id === sessionId)).map((slot) => slot.slotId);
}
