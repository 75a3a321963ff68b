import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from './atomicFile';

/**
 * The machine-local folder that every window of one device shares (VS Code's global storage).
 * DeviceSync only needs these five operations on flat file names, so tests can give it an
 * in-memory folder and two "windows" in one process, and the extension gives it a real one.
 */
export interface DeviceFiles {
  /** The file's text, or undefined when it does not exist. */
  read(name: string): Promise<string | undefined>;
  /** Replaces the file atomically (readers see the old or the new text, never a mix). */
  write(name: string, text: string): Promise<void>;
  /** Creates the file only if it does not exist yet; false when it did. */
  createExclusive(name: string, text: string): Promise<boolean>;
  list(): Promise<string[]>;
  remove(name: string): Promise<void>;
}

function checkName(name: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,120}$/i.test(name)) throw new Error(`bad device file name ${JSON.stringify(name.slice(0, 40))}`);
  return name;
}

/** DeviceFiles over a real folder. */
export class FolderDeviceFiles implements DeviceFiles {
  constructor(readonly dir: string) {}

  async read(name: string): Promise<string | undefined> {
    try {
      return await fs.readFile(path.join(this.dir, checkName(name)), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  write(name: string, text: string): Promise<void> {
    return writeFileAtomic(path.join(this.dir, checkName(name)), text);
  }

  async createExclusive(name: string, text: string): Promise<boolean> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    let handle;
    try {
      handle = await fs.open(path.join(this.dir, checkName(name)), 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    try {
      await handle.writeFile(text);
    } finally {
      await handle.close();
    }
    return true;
  }

  async list(): Promise<string[]> {
    try {
      return (await fs.readdir(this.dir)).filter((name) => !name.startsWith('.'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  async remove(name: string): Promise<void> {
    await fs.rm(path.join(this.dir, checkName(name)), { force: true });
  }
}

/** DeviceFiles in memory: shared by several DeviceSync instances, it plays one device's folder. */
export class MemoryDeviceFiles implements DeviceFiles {
  readonly files = new Map<string, string>();

  async read(name: string): Promise<string | undefined> {
    return this.files.get(checkName(name));
  }

  async write(name: string, text: string): Promise<void> {
    this.files.set(checkName(name), text);
  }

  async createExclusive(name: string, text: string): Promise<boolean> {
    if (this.files.has(checkName(name))) return false;
    this.files.set(name, text);
    return true;
  }

  async list(): Promise<string[]> {
    return [...this.files.keys()];
  }

  async remove(name: string): Promise<void> {
    this.files.delete(checkName(name));
  }
}
