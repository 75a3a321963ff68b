// Bundles the extension and the sync server. ssh2's optional native helpers are left out:
// ssh2 falls back to Node's own crypto when they are missing, so the .vsix needs no native code.
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

const common = {
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
  { ...common, entryPoints: ['src/extension.ts'], outfile: 'dist/extension.js', external: [...common.external, 'vscode'] },
  { ...common, entryPoints: ['src/server/main.ts'], outfile: 'dist/server.js' },
];

// ssh2 reaches Pageant through its helper util/pagent.exe, resolved from its own directory: in the
// bundle that is dist/, so the helper goes to util/ beside it (and into the .vsix).
const copyPageantHelper = async () => {
  const { copyFile, mkdir } = await import('node:fs/promises');
  await mkdir('util', { recursive: true });
  await copyFile('node_modules/ssh2/util/pagent.exe', 'util/pagent.exe');
};

if (watch) {
  await copyPageantHelper();
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all([...builds.map((options) => esbuild.build(options)), copyPageantHelper()]);
}
