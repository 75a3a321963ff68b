import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

/** The folder rules of docs/architecture.md ("Folders and what each may import"), checked on every import in src/. */
const ROOT = join(__dirname, '..', '..');
const SRC = join(ROOT, 'src');
const MAY_IMPORT: Record<string, readonly string[]> = {
  editor: ['session', 'ssh', 'multiplexer', 'sync', 'common'],
  session: ['ssh', 'multiplexer', 'common'],
  sync: ['ssh', 'multiplexer', 'common'],
  multiplexer: ['ssh', 'common'],
  ssh: ['common'],
  common: [],
  server: [],
};

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

const folderOf = (file: string): string => relative(SRC, file).split(sep)[0];

/** Import specifiers of a file, with whether the import is for types only. */
function imports(text: string): { spec: string; typeOnly: boolean }[] {
  const found: { spec: string; typeOnly: boolean }[] = [];
  for (const match of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) found.push({ spec: match[3], typeOnly: Boolean(match[2]) });
  for (const match of text.matchAll(/\b(?:require|import)\(\s*'([^']+)'\s*\)/g)) found.push({ spec: match[1], typeOnly: false });
  return found;
}

describe('architecture: folders and what each may import', () => {
  const files = sources(SRC);

  it('every file of src/ sits in a known folder', () => {
    const unknown = files.filter((file) => !(folderOf(file) in MAY_IMPORT)).map((file) => relative(ROOT, file));
    assert.deepEqual(unknown, []);
  });

  it('imports follow the folder rules', () => {
    const broken: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      for (const { spec } of imports(readFileSync(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const target = folderOf(normalize(join(dirname(file), spec)));
        if (target !== from && !MAY_IMPORT[from]?.includes(target)) broken.push(`${relative(ROOT, file)} -> ${spec}`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('only src/editor/ imports vscode at runtime', () => {
    const runtime = files
      .filter((file) => folderOf(file) !== 'editor')
      .filter((file) => imports(readFileSync(file, 'utf8')).some(({ spec, typeOnly }) => spec === 'vscode' && !typeOnly))
      .map((file) => relative(ROOT, file));
    assert.deepEqual(runtime, []);
  });

  it('the rules can fail (a known-bad import is caught)', () => {
    assert.deepEqual(imports(`import { x } from '../editor/tabManager';\nimport type { Y } from 'vscode';`), [
      { spec: '../editor/tabManager', typeOnly: false },
      { spec: 'vscode', typeOnly: true },
    ]);
  });
});
