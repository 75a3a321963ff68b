import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of a new file. */
  readonly mode?: number;
  /**
   * fsync the file before the rename and the directory after it (default true), so the new
   * content survives a power loss. Without it the rename is still atomic against a process crash;
   * a power loss may leave the old content or, on some file systems, an empty or torn file, so use
   * it only for content whose reader detects a torn file (see stateFile.ts).
   */
  readonly fsync?: boolean;
}

/**
 * Replaces `file` so that a crash leaves either the old or the new content, never a torn mix:
 * write a temporary sibling, fsync it, rename it over the target, then fsync the directory.
 */
export async function writeFileAtomic(file: string, content: string | Uint8Array, options: AtomicWriteOptions | number = {}): Promise<void> {
  const { mode = 0o600, fsync = true } = typeof options === 'number' ? { mode: options } : options;
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(temp, 'wx', mode);
  try {
    await handle.writeFile(content);
    if (fsync) await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  if (!fsync) return;
  try {
    const dirHandle = await fs.open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch {
    // Some platforms (Windows) cannot fsync a directory; the rename is still atomic there.
  }
}
