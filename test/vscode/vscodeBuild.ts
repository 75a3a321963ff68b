/**
 * Which desktop VS Code build `npm run test:vscode` runs in, or why it skips. Pure apart from the
 * probe it is given, so the unit tests can drive every branch without a network or a VS Code.
 */

export const DOWNLOAD_HOST = 'update.code.visualstudio.com';

export type VscodeBuild =
  /** VSCODE_EXECUTABLE names an existing file. */
  | { kind: 'executable'; path: string }
  /** @vscode/test-electron's download (or its cached copy in .vscode-test when offline). */
  | { kind: 'download'; cached: boolean }
  /** Nothing to run in: one line for the log, and the run passes. */
  | { kind: 'skip'; line: string };

export interface BuildProbe {
  /** 'file', 'other' (a folder, a device…) or 'missing'. */
  pathKind(path: string): 'file' | 'other' | 'missing';
  /** Completed downloads in the cache folder. */
  cachedBuilds(): string[];
  /** Why the download server cannot be reached, or undefined if it answers. */
  downloadBlocker(): Promise<string | undefined>;
}

/** An explicitly named executable that cannot be used: an error, never a skip. */
export class VscodeBuildError extends Error {
  override readonly name = 'VscodeBuildError';
}

export function skipLine(reason: string): string {
  return `test:vscode: skipped — no VS Code build: ${reason}; set VSCODE_EXECUTABLE=/path/to/code, or allow downloads from ${DOWNLOAD_HOST}`;
}

/** Turned off by TETHER_VSCODE_DOWNLOAD=0 (or false/no/off). */
export function downloadsOff(env: NodeJS.ProcessEnv): boolean {
  return /^(0|false|no|off)$/i.test((env.TETHER_VSCODE_DOWNLOAD ?? '').trim());
}

export async function chooseVscodeBuild(env: NodeJS.ProcessEnv, probe: BuildProbe): Promise<VscodeBuild> {
  const executable = env.VSCODE_EXECUTABLE?.trim();
  if (executable) {
    const kind = probe.pathKind(executable);
    if (kind === 'missing') throw new VscodeBuildError(`VSCODE_EXECUTABLE=${executable} does not exist: point it at a desktop VS Code executable, or unset it to download one`);
    if (kind !== 'file') {
      throw new VscodeBuildError(`VSCODE_EXECUTABLE=${executable} is not a file: name the executable itself (Linux: …/code, macOS: …/Contents/MacOS/Electron, Windows: …\\Code.exe)`);
    }
    return { kind: 'executable', path: executable };
  }
  if (downloadsOff(env)) return { kind: 'skip', line: skipLine('VSCODE_EXECUTABLE is not set and TETHER_VSCODE_DOWNLOAD=0 turns downloads off') };
  const blocker = await probe.downloadBlocker();
  if (blocker === undefined) return { kind: 'download', cached: false };
  // test-electron falls back to a completed earlier download when the server cannot be reached.
  if (probe.cachedBuilds().length > 0) return { kind: 'download', cached: true };
  return { kind: 'skip', line: skipLine(`VSCODE_EXECUTABLE is not set and ${DOWNLOAD_HOST} cannot be reached (${oneLine(blocker)})`) };
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 160);
}
