/**
 * Finding and ending the processes the suite started. Every one of them carries the run's root
 * folder in its command line (code-server's --user-data-dir, Chromium's profile, sshd's -f under
 * TMPDIR), so a scan of /proc finds them even after the test process itself died.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** PIDs (other than ours and our parents') whose command line mentions `marker`. */
export function processesMentioning(marker: string): number[] {
  const skip = new Set([process.pid, process.ppid]);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (skip.has(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(marker)) found.push(pid);
    } catch {
      /* gone already */
    }
  }
  return found;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, a short grace period, then SIGKILL for whatever is left. Returns what it signalled. */
export async function endAll(pids: number[], graceMs = 3000): Promise<number[]> {
  const signalled = pids.filter((pid) => {
    try {
      process.kill(pid, 'SIGTERM');
      return true;
    } catch {
      return false;
    }
  });
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && signalled.some(alive)) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const pid of signalled.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  return signalled;
}

export async function endProcessesMentioning(marker: string): Promise<number[]> {
  return endAll(processesMentioning(marker));
}
