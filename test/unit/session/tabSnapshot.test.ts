import assert from 'node:assert/strict';
import { newSessionId } from '../../../src/common/sessionId';
import { SNAPSHOT_FORMAT, TabRecord, decodeSnapshot, encodeSnapshot, parseDirectories, parseTitles, tabName } from '../../../src/session/tabSnapshot';

const record = (overrides: Partial<TabRecord> = {}): TabRecord => ({
  id: newSessionId(),
  hostLabel: 'build-1',
  user: 'alice',
  hostName: '10.0.0.5',
  port: 22,
  multiplexer: 'tmux',
  name: 'build-1 · abcdef',
  location: 'panel',
  cwd: '/srv/app',
  startedAt: 1_700_000_000_000,
  ...overrides,
});

describe('tab snapshot', () => {
  it('round-trips through JSON in tab order', () => {
    const tabs = [record(), record({ multiplexer: 'screen', location: 'editor', cwd: undefined }), record({ port: 2222 })];
    const decoded = decodeSnapshot(JSON.parse(JSON.stringify(encodeSnapshot(tabs))));
    assert.equal(decoded.corrupt, false);
    assert.equal(decoded.dropped, 0);
    assert.deepEqual(decoded.tabs.map((tab) => tab.id), tabs.map((tab) => tab.id));
    assert.equal(decoded.tabs[1].location, 'editor');
    assert.equal(decoded.tabs[1].cwd, undefined);
    assert.equal(encodeSnapshot(tabs).format, SNAPSHOT_FORMAT);
  });

  it('keeps a tmux tab\'s tmux version, and drops one that is not a version or not a tmux tab\'s', () => {
    const tabs = [
      record({ tmuxVersion: '3.3a' }),
      record({ tmuxVersion: '99.0master' }),
      record({ tmuxVersion: '3.3a; rm -rf ~' }),
      record({ multiplexer: 'screen', tmuxVersion: '3.3a' }),
      record({ tmuxVersion: 33 as unknown as string }),
      record(),
    ];
    const decoded = decodeSnapshot(JSON.parse(JSON.stringify(encodeSnapshot(tabs))));
    assert.equal(decoded.dropped, 0, 'a bad version costs the version, not the tab');
    assert.deepEqual(decoded.tabs.map((tab) => tab.tmuxVersion), ['3.3a', '99.0master', undefined, undefined, undefined, undefined]);
  });

  it('treats a missing snapshot as empty, not corrupt', () => {
    assert.deepEqual(decodeSnapshot(undefined), { tabs: [], dropped: 0, corrupt: false });
    assert.deepEqual(decodeSnapshot({ format: SNAPSHOT_FORMAT, tabs: [] }), { tabs: [], dropped: 0, corrupt: false });
  });

  for (const [name, raw] of [
    ['a number', 42],
    ['unparsable JSON text', '{"format":2,'],
    ['an object without tabs', { format: 2 }],
    ['a format from the future', { format: 99, tabs: [] }],
    ['tabs that are not a list', { format: 2, tabs: 'x' }],
  ] as const) {
    it(`reports ${name} as corrupt and restores nothing`, () => {
      const decoded = decodeSnapshot(raw);
      assert.equal(decoded.corrupt, true);
      assert.deepEqual(decoded.tabs, []);
    });
  }

  it('drops bad records one by one and keeps the good ones', () => {
    const good = record();
    const decoded = decodeSnapshot({
      format: 2,
      tabs: [
        { ...record(), id: 'not-an-id; rm -rf /' },
        { ...record(), port: 70000 },
        { ...record(), multiplexer: 'zellij' },
        { ...record(), hostName: '' },
        { ...record(), user: 'x'.repeat(5000) },
        null,
        'text',
        good,
        { ...good },
      ],
    });
    assert.deepEqual(decoded.tabs.map((tab) => tab.id), [good.id]);
    assert.equal(decoded.dropped, 8);
  });

  it('migrates the older format (a bare list with sessionId and host)', () => {
    const id = newSessionId();
    const decoded = decodeSnapshot([{ sessionId: id, host: 'old-host', user: 'bob', port: 2200, multiplexer: 'screen', name: 'old' }]);
    assert.equal(decoded.corrupt, false);
    assert.equal(decoded.tabs.length, 1);
    assert.deepEqual(
      { id: decoded.tabs[0].id, hostLabel: decoded.tabs[0].hostLabel, hostName: decoded.tabs[0].hostName, port: decoded.tabs[0].port, multiplexer: decoded.tabs[0].multiplexer },
      { id, hostLabel: 'old-host', hostName: 'old-host', port: 2200, multiplexer: 'screen' },
    );
  });

  it('fills a name for a record that has none, from the host and a short ID', () => {
    const tab = record({ name: '' as string });
    const decoded = decodeSnapshot({ format: 2, tabs: [tab] });
    assert.equal(decoded.tabs[0].name, `build-1 · ${tab.id.slice(0, 6)}`);
  });

  it('parses the per-host directory listing and ignores foreign or malformed lines', () => {
    const id = newSessionId();
    const output = [`tether_${id} /home/alice/my project`, 'mysession /tmp', `tether_${id.slice(0, 10)} /x`, `tether_${newSessionId()} relative`].join('\n');
    assert.deepEqual([...parseDirectories(output)], [[id, '/home/alice/my project']]);
  });
});

describe('tab titles (Rename Session)', () => {
  it('restores a renamed tab under its title, cleaned and bounded', () => {
    const titled = record({ title: 'deploy logs', name: 'deploy logs' });
    const hostile = record({ title: 'evil\x1b]0;x\x07\nname' + 'x'.repeat(500) });
    const decoded = decodeSnapshot(JSON.parse(JSON.stringify(encodeSnapshot([titled, hostile, record()]))));
    assert.equal(decoded.tabs[0].title, 'deploy logs');
    assert.equal(decoded.tabs[0].name, 'deploy logs');
    assert.equal(decoded.tabs[1].title!.length, 100);
    assert.doesNotMatch(decoded.tabs[1].title!, /[\x00-\x1f]/);
    assert.equal(decoded.tabs[1].name, decoded.tabs[1].title);
    assert.equal(decoded.tabs[2].title, undefined);
    assert.equal(tabName({ hostLabel: 'box', id: decoded.tabs[2].id }), `box · ${decoded.tabs[2].id.slice(0, 6)}`);
  });

  it('parses the titles the directory listing carries', () => {
    const [a, b] = [newSessionId(), newSessionId()];
    const titles = parseTitles(`tether_${a} /srv\ntitle tether_${a} =deploy%20logs\ntitle tether_${b} =\ntitle tether_${b}x =y\ntitle tether_${a} =#bad`);
    assert.equal(titles.get(a), undefined, 'a later malformed line for the same session is read as no title');
    assert.ok(titles.has(b));
    assert.equal(titles.get(b), undefined);
    assert.equal(parseTitles(`title tether_${a} =deploy%20logs`).get(a), 'deploy logs');
  });
});
