/** esbuild with the options of esbuild.mjs (its `common`), for the bundles tests and benchmarks build. */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export const REPO = resolve(__dirname, '../..');

/** esbuild.mjs's shared options: bundle, platform, target, format, source maps, externals. */
export async function esbuildCommon(): Promise<esbuild.BuildOptions> {
  // esbuild.mjs is ESM and builds only when run, not when imported.
  return ((await import(pathToFileURL(join(REPO, 'esbuild.mjs')).href)) as { common: esbuild.BuildOptions }).common;
}

/** One esbuild build with esbuild.mjs's options; `external` adds to its list rather than replacing it. */
export async function bundle(options: esbuild.BuildOptions): Promise<void> {
  const common = await esbuildCommon();
  await esbuild.build({ ...common, ...options, external: [...(common.external ?? []), ...(options.external ?? [])] });
}

/**
 * Bundles the sync server (src/server/main.ts) of `tree` into `outDir`/server.js, as `npm run build`
 * bundles dist/server.js. `tree` defaults to this checkout; another one (a `git archive` of an older
 * commit, say) resolves its packages from this checkout's node_modules.
 */
export async function buildServer(outDir: string, tree = REPO): Promise<string> {
  const outfile = join(outDir, 'server.js');
  await bundle({ entryPoints: [join(tree, 'src/server/main.ts')], outfile, ...(tree === REPO ? {} : { nodePaths: [join(REPO, 'node_modules')] }) });
  return outfile;
}
