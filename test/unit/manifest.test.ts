/** package.json as the Marketplace and VS Code read it (issue 19): fields, files they point at, links. */
import * as assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const declared = new Set<string>(manifest.contributes.commands.map((command: { command: string }) => command.command));
/** The categories the Marketplace accepts (vsce rejects others). */
const CATEGORIES = ['AI', 'Azure', 'Chat', 'Data Science', 'Debuggers', 'Education', 'Extension Packs', 'Formatters', 'Keymaps', 'Language Packs', 'Linters', 'Machine Learning', 'Notebooks', 'Other', 'Programming Languages', 'SCM Providers', 'Snippets', 'Testing', 'Themes', 'Visualization'];

/** `command:` links in Markdown-like text, without their arguments. */
const commandLinks = (text: string): string[] => [...text.matchAll(/\]\(command:([\w.-]+)/g)].map((match) => match[1]);

/** Width and height from a PNG's IHDR, after checking the signature. */
function pngSize(file: string): { width: number; height: number } {
  const bytes = readFileSync(file);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${file} is not a PNG`);
  assert.equal(bytes.subarray(12, 16).toString('ascii'), 'IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('package.json (Marketplace fit, remote windows, walkthrough)', () => {
  it('runs on the UI side when it can, and on the workspace side otherwise', () => {
    assert.deepEqual(manifest.extensionKind, ['ui', 'workspace']);
  });

  it('has a 128×128 PNG icon that the .vsix ships', () => {
    assert.equal(typeof manifest.icon, 'string');
    assert.match(manifest.icon, /\.png$/);
    const file = join(ROOT, manifest.icon);
    assert.ok(existsSync(file), `${manifest.icon} exists`);
    assert.deepEqual(pngSize(file), { width: 128, height: 128 });
    assert.match(readFileSync(join(ROOT, '.vscodeignore'), 'utf8'), /^!media\/\*\*$/m);
  });

  it('has no placeholder repository, bugs or homepage URL', () => {
    const urls = [manifest.repository, manifest.repository?.url, manifest.bugs, manifest.bugs?.url, manifest.homepage].filter((value) => typeof value === 'string');
    for (const url of urls) {
      assert.match(url, /^(https:\/\/|git@)/, `${url} is a real https or ssh URL`);
      assert.doesNotMatch(url, /example\.(invalid|com|org|net)|\.invalid\b|localhost|127\.0\.0\.1|placeholder|todo|your-?(name|org)/i, `${url} is a placeholder`);
    }
    // The package script then must not stop at vsce's "repository is missing" prompt.
    if (!manifest.repository) assert.match(manifest.scripts.package, /--allow-missing-repository/);
  });

  it('has Marketplace categories and search keywords', () => {
    assert.ok(Array.isArray(manifest.categories) && manifest.categories.length > 0);
    for (const category of manifest.categories) assert.ok(CATEGORIES.includes(category), `${category} is a Marketplace category`);
    assert.ok(Array.isArray(manifest.keywords));
    assert.ok(manifest.keywords.length >= 5 && manifest.keywords.length <= 30, 'between 5 and 30 keywords');
    for (const keyword of ['ssh', 'tmux', 'terminal']) assert.ok(manifest.keywords.includes(keyword), `keyword ${keyword}`);
  });

  it('has a walkthrough of 4 steps, each with an image in the package and a link to a declared command', () => {
    const walkthroughs = manifest.contributes.walkthroughs;
    assert.ok(Array.isArray(walkthroughs) && walkthroughs.length === 1);
    const [walkthrough] = walkthroughs;
    assert.ok(walkthrough.id && walkthrough.title && walkthrough.description);
    assert.deepEqual(
      walkthrough.steps.map((step: { id: string }) => step.id),
      ['openTerminal', 'surviveDisconnect', 'setUpSync', 'joinDevices'],
    );
    for (const step of walkthrough.steps) {
      assert.ok(step.title && step.description, `step ${step.id} has a title and description`);
      assert.equal(typeof step.media?.image, 'string', `step ${step.id} has an image`);
      assert.ok(step.media.altText, `step ${step.id} image has alt text`);
      assert.match(step.media.image, /^media\//, 'inside media/, which the .vsix ships');
      assert.ok(existsSync(join(ROOT, step.media.image)), `${step.media.image} exists`);
      const links = commandLinks(step.description);
      assert.ok(links.length > 0, `step ${step.id} links a command`);
      for (const link of links) assert.ok(declared.has(link), `step ${step.id} links ${link}, which package.json declares`);
    }
    assert.deepEqual(commandLinks(walkthrough.steps[0].description), ['tether.newTerminal']);
  });

  it('gives the Hosts view a welcome text whose links are declared commands', () => {
    const hosts = manifest.contributes.viewsWelcome.filter((entry: { view: string }) => entry.view === 'tether.hosts');
    assert.equal(hosts.length, 1);
    assert.match(hosts[0].contents, /~\/\.ssh\/config/);
    const links = commandLinks(hosts[0].contents);
    assert.ok(links.includes('tether.openSshConfig') && links.includes('tether.newTerminal'), links.join(', '));
    for (const link of links) assert.ok(declared.has(link), `${link} is declared`);
  });

  it('declares Report a Problem, and every declared tether command is registered in src', () => {
    assert.ok(declared.has('tether.reportProblem'));
    // Commands are named once, in src/editor/contributions.ts, and registered by that name.
    const table = readFileSync(join(ROOT, 'src/editor/contributions.ts'), 'utf8');
    const sources = ['src/editor/extension.ts', 'src/editor/terminalCommands.ts', 'src/editor/crossDeviceController.ts', 'src/editor/syncController.ts', 'src/editor/reportProblemCommand.ts'].map((file) => readFileSync(join(ROOT, file), 'utf8')).join('\n');
    for (const command of declared) {
      const name = new RegExp(`^\\s*(\\w+): '${command.replace(/\./g, '\\.')}',$`, 'm').exec(table)?.[1];
      assert.ok(name, `${command} is in contributions.ts`);
      assert.match(sources, new RegExp(`\\bregisterCommand\\(Commands\\.${name}\\b`), `${command} is registered`);
    }
  });
});
