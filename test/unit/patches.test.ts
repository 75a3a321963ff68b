import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

describe('patches/ (applied by patch-package after npm ci)', () => {
  it('touch only files that ship in the package, never build output a fresh install may lack', () => {
    const dir = join(__dirname, '..', '..', 'patches');
    for (const name of readdirSync(dir).filter((file) => file.endsWith('.patch'))) {
      const files = [...readFileSync(join(dir, name), 'utf8').matchAll(/^diff --git a\/(\S+)/gm)].map((match) => match[1]);
      assert.ok(files.length > 0, `${name} patches nothing`);
      for (const file of files) assert.doesNotMatch(file, /\/(build|prebuilds)\/|\.node$|config\.gypi$|Makefile$/, `${name} patches ${file}`);
    }
  });
});
