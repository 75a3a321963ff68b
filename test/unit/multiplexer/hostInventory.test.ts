import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { inventoryScript, parseInventory, provenGone } from '../../../src/multiplexer/hostInventory';
import { newSessionId } from '../../../src/common/sessionId';

describe('host inventory', () => {
  const version = { major: 3, minor: 3, suffix: 'a' };

  it('is one valid sh script covering the multiplexers the host has', () => {
    const both = inventoryScript({ home: '/h', tmux: version, screen: { major: 4, minor: 9, suffix: '' } });
    execFileSync('sh', ['-n', '-c', both]);
    assert.match(both, /tmux -L tether/);
    assert.match(both, /SCREENDIR/);
    assert.doesNotMatch(inventoryScript({ home: '/h', tmux: version }), /SCREENDIR/);
    assert.equal(inventoryScript({ home: '/h' }), 'true');
  });

  it('parses tmux and screen sections, with client counts and start times', () => {
    const [a, b, c] = [newSessionId(), newSessionId(), newSessionId()];
    const output = ['== tmux', `tether_${a} 2 1700000000`, 'other 0 1', '== screen', `tether_${b} Attached`, `tether_${c} Multi, detached`, 'junk'].join('\n');
    assert.deepEqual(parseInventory(output), [
      { id: a, multiplexer: 'tmux', attachedClients: 2, createdAt: 1_700_000_000_000 },
      { id: b, multiplexer: 'screen', attachedClients: 1 },
      { id: c, multiplexer: 'screen', attachedClients: 0 },
    ]);
  });

  it('ignores names that only look like ours', () => {
    assert.deepEqual(parseInventory(`== tmux\ntether_short 1 1\ntether_${newSessionId()}x 1 1\n`), []);
  });
});

describe('stale listings proven gone by an inventory', () => {
  it('reports only sessions whose multiplexer the inventory covered', () => {
    const [alive, goneTmux, goneScreen] = [newSessionId(), newSessionId(), newSessionId()];
    const listed = [
      { id: alive, multiplexer: 'tmux' as const },
      { id: goneTmux, multiplexer: 'tmux' as const },
      { id: goneScreen, multiplexer: 'screen' as const },
    ];
    assert.deepEqual(provenGone(listed, `== tmux\ntether_${alive} 1 1\n`), [goneTmux]);
    assert.deepEqual(provenGone(listed, `== tmux\ntether_${alive} 1 1\n== screen\n`), [goneTmux, goneScreen]);
    assert.deepEqual(provenGone(listed, ''), [], 'an empty answer proves nothing');
  });
});
