/** contributions.ts against package.json, both ways: commands, settings and defaults, context keys, views. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Commands, ContextKeys, Settings, TerminalProfiles, ViewItems, Views } from '../../../src/editor/contributions';

const ROOT = join(__dirname, '..', '..', '..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const contributes = manifest.contributes;

const sorted = (values: Iterable<string>): string[] => [...values].sort();

/** Every `when` clause of package.json (menus, views welcome, views). */
function whenClauses(): string[] {
  const found: string[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'when' && typeof inner === 'string') found.push(inner);
        else visit(inner);
      }
    }
  };
  visit(contributes);
  return found;
}

/** The terms of a when clause: `key`, `key == value`, `key =~ /re/` (values are not keys). */
function terms(clause: string): { key: string; op?: string; value?: string }[] {
  return clause
    .split(/&&|\|\|/)
    .map((term) => term.trim().replace(/^[!(\s]+|[)\s]+$/g, ''))
    .filter((term) => term.length > 0)
    .map((term) => {
      const match = /^([\w.]+)\s*(==|!=|=~)\s*(.+)$/.exec(term);
      return match ? { key: match[1], op: match[2], value: match[3].trim() } : { key: term };
    });
}

describe('contributions.ts matches package.json', () => {
  it('every contributed command is in the table, and every command in the table is contributed', () => {
    const declared = contributes.commands.map((command: { command: string }) => command.command);
    assert.deepEqual(sorted(Object.values(Commands)), sorted(declared));
  });

  it('every setting is in the table with the same default, type and choices, and the other way round', () => {
    const properties: Record<string, { type: string; default: unknown; enum?: unknown[] }> = contributes.configuration.properties;
    assert.deepEqual(sorted(Object.keys(Settings)), sorted(Object.keys(properties)));
    for (const [key, spec] of Object.entries(Settings)) {
      const property = properties[key];
      assert.deepEqual(spec.default, property.default, `${key}: default`);
      assert.equal(typeof spec.default, property.type, `${key}: type`);
      assert.deepEqual('values' in spec ? spec.values : undefined, property.enum, `${key}: choices`);
    }
  });

  it('every tether.* context key in a when clause is declared, and every declared one is used', () => {
    const used = new Set(whenClauses().flatMap(terms).map((term) => term.key).filter((key) => key.startsWith('tether.')));
    assert.deepEqual(sorted(used), sorted(Object.values(ContextKeys)));
  });

  it('the views, the terminal profile and the tree items package.json names are the ones the code uses', () => {
    assert.deepEqual(sorted(Object.values(Views)), sorted(contributes.views.tether.map((view: { id: string }) => view.id)));
    assert.deepEqual(sorted(Object.values(TerminalProfiles)), sorted(contributes.terminal.profiles.map((profile: { id: string }) => profile.id)));
    const viewTerms = whenClauses().flatMap(terms);
    for (const term of viewTerms.filter((t) => t.key === 'view')) assert.ok((Object.values(Views) as string[]).includes(term.value!), `view ${term.value} is declared`);
    const items: string[] = Object.values(ViewItems);
    for (const term of viewTerms.filter((t) => t.key === 'viewItem')) {
      if (term.op === '=~') {
        const pattern = /^\/(.*)\/$/.exec(term.value!);
        assert.ok(pattern, `viewItem =~ ${term.value} is a regular expression`);
        const re = new RegExp(pattern[1]);
        assert.ok(items.some((item) => re.test(item)), `viewItem =~ ${term.value} matches a declared tree item`);
      } else {
        assert.ok(items.includes(term.value!), `viewItem ${term.value} is declared`);
      }
    }
  });

  it('every command in the table is registered in src/editor, through the typed registerCommand', () => {
    const dir = join(ROOT, 'src', 'editor');
    const sources = readdirSync(dir).filter((name) => name.endsWith('.ts')).map((name) => readFileSync(join(dir, name), 'utf8')).join('\n');
    for (const name of Object.keys(Commands)) assert.match(sources, new RegExp(`\\bregisterCommand\\(Commands\\.${name}\\b`), `Commands.${name} is registered`);
  });

  it('no file in src/editor names a command, setting or context key by a plain string', () => {
    const dir = join(ROOT, 'src', 'editor');
    const names = new Set<string>([...Object.values(Commands), ...Object.values(ContextKeys), ...Object.values(Views), ...Object.values(TerminalProfiles), ...Object.values(ViewItems)]);
    const settingSuffixes = Object.keys(Settings).map((key) => key.slice('tether.'.length));
    const offenders: string[] = [];
    for (const name of readdirSync(dir).filter((file) => file.endsWith('.ts') && file !== 'contributions.ts')) {
      const text = readFileSync(join(dir, name), 'utf8');
      for (const match of text.matchAll(/'([\w.]+)'/g)) {
        if (names.has(match[1])) offenders.push(`${name}: '${match[1]}'`);
        // A setting read by its short name (getConfiguration('tether').get('…')) would restate its default.
        if (settingSuffixes.includes(match[1]) && /\.(get|update)\s*(<[^>]*>)?\(\s*$/.test(text.slice(0, match.index))) offenders.push(`${name}: '${match[1]}'`);
      }
    }
    assert.deepEqual(offenders, []);
  });
});
