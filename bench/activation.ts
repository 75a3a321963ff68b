/**
 * Extension activation time and .vsix size.
 *
 * Activation: the extension is bundled exactly as `npm run package` bundles it (esbuild, minified,
 * production) into a private folder, then each run is a fresh `node` process that requires the
 * bundle with `vscode` mapped to an inert STUB (bench/activation/vscodeStub.cjs) and calls
 * activate(). The figure is module load + activate() with API objects that do nothing; a real
 * extension host adds its own costs that this does not include.
 *
 * .vsix size: `vsce package --no-dependencies`, as `npm run package` runs it, in a private copy of
 * the files the package contains (so the shared dist/ and tether.vsix are not rewritten under
 * other people's feet).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundle } from '../test/support/bundle';
import { Summary, summarize } from './lib/util';

const repo = join(__dirname, '..');

export interface ActivationResult {
  runs: number;
  bundleBytes: number;
  requireMs: Summary;
  activateMs: Summary;
  totalMs: Summary;
  /** Until the event loop is idle after activate() (async work it started). */
  settledMs: Summary;
  /** Diagnostic: the same bundle with ssh2 left out (resolved to a stub), i.e. if ssh2 were loaded lazily. */
  withoutSsh2: { requireMs: Summary; activateMs: Summary; totalMs: Summary };
}

async function buildProduction(outDir: string, withoutSsh2 = false): Promise<string> {
  const outfile = join(outDir, 'dist', withoutSsh2 ? 'extension-no-ssh2.js' : 'extension.js');
  // The options of esbuild.mjs with --production.
  await bundle({
    entryPoints: [join(repo, 'src/editor/extension.ts')],
    outfile,
    sourcemap: false,
    minify: true,
    external: ['vscode', ...(withoutSsh2 ? ['ssh2'] : [])],
    logLevel: 'error',
  });
  return outfile;
}

export async function activation(options: { quick: boolean; log: (line: string) => void }): Promise<ActivationResult> {
  const runs = options.quick ? 10 : 30;
  const dir = mkdtempSync(join(tmpdir(), 'tether-bench-activation-'));
  try {
    const bundle = await buildProduction(dir);
    const noSsh2 = await buildProduction(dir, true);
    type Sample = { requireMs: number; activateMs: number; settledMs: number };
    const samples: Sample[] = [];
    const diagnostic: Sample[] = [];
    for (let i = 0; i < runs + 2; i++) {
      for (const [file, into, stub] of [[bundle, samples, false], [noSsh2, diagnostic, true]] as const) {
        const storage = mkdtempSync(join(dir, 'storage-'));
        const env = { ...process.env, HOME: storage, ...(stub ? { TETHER_BENCH_STUB_SSH2: '1' } : {}) };
        const out = execFileSync(process.execPath, [join(__dirname, 'activation', 'child.cjs'), file, storage], { encoding: 'utf8', env });
        if (i >= 2) into.push(JSON.parse(out.trim().split('\n').pop()!)); // two warm-up runs (disk cache)
      }
    }
    const result: ActivationResult = {
      runs,
      bundleBytes: statSync(bundle).size,
      requireMs: summarize(samples.map((s) => s.requireMs)),
      activateMs: summarize(samples.map((s) => s.activateMs)),
      totalMs: summarize(samples.map((s) => s.requireMs + s.activateMs)),
      settledMs: summarize(samples.map((s) => s.settledMs)),
      withoutSsh2: {
        requireMs: summarize(diagnostic.map((s) => s.requireMs)),
        activateMs: summarize(diagnostic.map((s) => s.activateMs)),
        totalMs: summarize(diagnostic.map((s) => s.requireMs + s.activateMs)),
      },
    };
    options.log(`  activation: require ${result.requireMs.p50.toFixed(1)} ms + activate ${result.activateMs.p50.toFixed(1)} ms (p50 of ${runs}); without ssh2 at load ${result.withoutSsh2.totalMs.p50.toFixed(1)} ms`);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface VsixResult {
  bytes: number;
  files: number;
  extensionJsBytes: number;
  listing: string[];
}

export async function vsixSize(log: (line: string) => void): Promise<VsixResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-bench-vsix-'));
  try {
    for (const file of ['package.json', '.vscodeignore', 'README.md', 'CHANGELOG.md', 'LICENSE']) {
      if (existsSync(join(repo, file))) copyFileSync(join(repo, file), join(dir, file));
    }
    if (existsSync(join(repo, 'media'))) cpSync(join(repo, 'media'), join(dir, 'media'), { recursive: true });
    mkdirSync(join(dir, 'dist'), { recursive: true });
    const bundle = await buildProduction(dir);
    const out = join(dir, 'tether.vsix');
    execFileSync(join(repo, 'node_modules/.bin/vsce'), ['package', '--no-dependencies', '--out', out], { cwd: dir, encoding: 'utf8', input: 'y\n', stdio: ['pipe', 'pipe', 'pipe'] });
    const listing = execFileSync('unzip', ['-l', out], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => /^\s*\d+\s+\S+\s+\S+\s+\S/.test(line))
      .map((line) => line.trim().replace(/\s+\S+\s+\S+\s+/, '  '));
    const result = { bytes: statSync(out).size, files: listing.length, extensionJsBytes: statSync(bundle).size, listing };
    log(`  .vsix: ${result.bytes} bytes, ${result.files} files`);
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
