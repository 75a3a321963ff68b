// Bundles the extension and the sync server. ssh2's optional native helpers are left out:
// ssh2 falls back to Node's own crypto when they are missing, so the .vsix needs no native code.
import * as esbuild from 'esbuild';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

/** Shared with test/support/bundle.ts: the tests, the benchmarks and test/vscode bundle the same way. */
export const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: production ? false : 'linked',
  minify: production,
  external: ['*.node', 'cpu-features', 'pg-native'],
  logLevel: 'warning',
};

const builds = [
  { ...common, entryPoints: ['src/editor/extension.ts'], outfile: 'dist/extension.js', external: [...common.external, 'vscode'] },
  { ...common, entryPoints: ['src/server/main.ts'], outfile: 'dist/server.js' },
];

// ssh2 reaches Pageant through its helper util/pagent.exe, resolved from its own directory: in the
// bundle that is dist/, so the helper goes to util/ beside it (and into the .vsix).
const copyPageantHelper = async () => {
  const { copyFile, mkdir } = await import('node:fs/promises');
  await mkdir('util', { recursive: true });
  await copyFile('node_modules/ssh2/util/pagent.exe', 'util/pagent.exe');
};

// Builds only when run (`node esbuild.mjs`), not when imported for `common`.
// import.meta.url is the real path, so argv[1] is compared through its symlinks too.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  if (watch) {
    await copyPageantHelper();
    for (const options of builds) await (await esbuild.context(options)).watch();
  } else {
    await Promise.all([...builds.map((options) => esbuild.build(options)), copyPageantHelper()]);
  }
}
