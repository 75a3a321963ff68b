import { strict as assert } from 'node:assert';
import { OutputBatcher, OutputBatcherOptions } from '../../../src/session/outputBatcher';

interface Recorder {
  writes: string[];
  events: string[];
  batcher: OutputBatcher;
  /** Resolves at the next write. */
  nextWrite(): Promise<string>;
}

function record(options: Partial<OutputBatcherOptions> = {}): Recorder {
  const writes: string[] = [];
  const events: string[] = [];
  let waiter: ((text: string) => void) | undefined;
  const batcher = new OutputBatcher({
    write: (text) => {
      writes.push(text);
      events.push(`write:${text.length}`);
      const w = waiter;
      waiter = undefined;
      w?.(text);
    },
    pause: () => events.push('pause'),
    resume: () => events.push('resume'),
    ...options,
  });
  return {
    writes,
    events,
    batcher,
    nextWrite: () => new Promise((resolve) => { waiter = resolve; }),
  };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** 1-, 2-, 3- and 4-byte characters, an emoji ZWJ sequence, a flag and a combining mark. */
const SAMPLE = 'a\u00e9\u00df\u20ac\u4e2d\u6587\ud83d\ude00\ud83d\udc69\u200d\ud83d\udc69\u200d\ud83d\udc67\ud83c\uddeb\ud83c\uddf7e\u0301\ud800\udf48z';

describe('OutputBatcher', () => {
  const open: OutputBatcher[] = [];
  afterEach(() => {
    for (const batcher of open.splice(0)) batcher.dispose();
  });
  function make(options: Partial<OutputBatcherOptions> = {}): Recorder {
    const r = record(options);
    open.push(r.batcher);
    return r;
  }

  describe('UTF-8 decoding', () => {
    const bytes = Buffer.from(SAMPLE, 'utf8');

    it('has a sample with every UTF-8 sequence length', () => {
      const lengths = new Set(Array.from(SAMPLE, (c) => Buffer.byteLength(c)));
      assert.deepEqual([...lengths].sort(), [1, 2, 3, 4]);
    });

    it('never garbles a character split at any single byte boundary', () => {
      for (let cut = 0; cut <= bytes.length; cut++) {
        const { writes, batcher } = make();
        batcher.push(bytes.subarray(0, cut));
        batcher.push(bytes.subarray(cut));
        batcher.flush();
        assert.equal(writes.join(''), SAMPLE, `cut at byte ${cut}`);
      }
    });

    it('never garbles a character split at any two byte boundaries, with flushes in between', () => {
      for (let a = 0; a <= bytes.length; a++) {
        for (let b = a; b <= bytes.length; b++) {
          const { writes, batcher } = make();
          batcher.push(bytes.subarray(0, a));
          batcher.flush();
          batcher.push(bytes.subarray(a, b));
          batcher.flush();
          batcher.push(bytes.subarray(b));
          batcher.flush();
          const text = writes.join('');
          assert.equal(text, SAMPLE, `cuts at ${a} and ${b}`);
          // No write ever ends in half a surrogate pair or a replacement character.
          for (const write of writes) {
            assert.ok(!write.includes('\ufffd'), `replacement char with cuts ${a}/${b}`);
            assert.ok(!/[\ud800-\udbff]$/.test(write), `dangling high surrogate with cuts ${a}/${b}`);
          }
        }
      }
    });

    it('decodes a stream fed one byte at a time', () => {
      const { writes, batcher } = make();
      const long = Buffer.from(SAMPLE.repeat(50), 'utf8');
      for (let i = 0; i < long.length; i++) batcher.push(long.subarray(i, i + 1));
      batcher.flush();
      assert.equal(writes.join(''), SAMPLE.repeat(50));
    });

    it('writes nothing for a chunk that is only the start of a character', () => {
      const { writes, batcher } = make();
      batcher.push(Buffer.from([0xf0, 0x9f]));
      batcher.flush();
      assert.deepEqual(writes, []);
      batcher.push(Buffer.from([0x98, 0x80]));
      batcher.flush();
      assert.deepEqual(writes, ['\ud83d\ude00']);
    });
  });

  describe('batching', () => {
    it('coalesces many chunks into one write on the timer', async () => {
      const { writes, batcher, nextWrite } = make({});
      const written = nextWrite();
      for (let i = 0; i < 100; i++) batcher.push(Buffer.from(`line ${i}\n`));
      assert.deepEqual(writes, [], 'nothing is written synchronously');
      assert.equal(await written, Array.from({ length: 100 }, (_, i) => `line ${i}\n`).join(''));
      assert.equal(writes.length, 1);
    });

    it('writes later output in a later batch, in order', async () => {
      const { writes, batcher, nextWrite } = make({});
      let written = nextWrite();
      batcher.push(Buffer.from('first '));
      batcher.push(Buffer.from('batch'));
      await written;
      written = nextWrite();
      batcher.push(Buffer.from('second'));
      await written;
      assert.deepEqual(writes, ['first batch', 'second']);
    });

    it('flush() writes pending text at once and cancels the timer', async () => {
      const { writes, batcher } = make({});
      batcher.push(Buffer.from('now'));
      batcher.flush();
      assert.deepEqual(writes, ['now']);
      await delay(30);
      assert.deepEqual(writes, ['now'], 'the cancelled timer must not write again');
      batcher.flush();
      assert.deepEqual(writes, ['now'], 'an empty flush writes nothing');
    });
  });

  describe('back-pressure', () => {
    it('pauses once at the high-water mark and resumes after the flush', () => {
      const { events, batcher } = make({ highWaterMark: 10 });
      batcher.push(Buffer.from('12345'));
      assert.deepEqual(events, []);
      batcher.push(Buffer.from('6789'));
      assert.deepEqual(events, [], 'below the mark');
      batcher.push(Buffer.from('0'));
      assert.deepEqual(events, ['pause'], 'at the mark');
      batcher.push(Buffer.from('more'));
      batcher.push(Buffer.from('and more'));
      assert.deepEqual(events, ['pause'], 'pause is not repeated');
      batcher.flush();
      assert.deepEqual(events, ['pause', 'write:22', 'resume']);
      // The count starts over after a flush.
      batcher.push(Buffer.from('123456789'));
      batcher.flush();
      assert.deepEqual(events, ['pause', 'write:22', 'resume', 'write:9']);
    });

    it('counts bytes, not characters', () => {
      const { events, batcher } = make({ highWaterMark: 8 });
      batcher.push(Buffer.from('\ud83d\ude00\ud83d\ude00')); // 2 characters, 8 bytes
      assert.deepEqual(events, ['pause']);
    });

    it('resumes after a timer flush too', async () => {
      const { events, batcher, nextWrite } = make({ highWaterMark: 4 });
      const written = nextWrite();
      batcher.push(Buffer.from('abcdef'));
      await written;
      assert.deepEqual(events, ['pause', 'write:6', 'resume']);
    });

    it('never resumes what it did not pause', () => {
      const { events, batcher } = make({ highWaterMark: 100 });
      batcher.push(Buffer.from('small'));
      batcher.flush();
      batcher.flush();
      assert.deepEqual(events, ['write:5']);
    });
  });

  describe('reset', () => {
    it('drops a dangling partial sequence so it cannot prefix the next stream', () => {
      const { writes, batcher } = make();
      const euro = Buffer.from('\u20ac', 'utf8');
      batcher.push(Buffer.concat([Buffer.from('old '), euro.subarray(0, 2)]));
      batcher.reset();
      assert.deepEqual(writes, ['old '], 'pending text is written before the reset');
      batcher.push(Buffer.from('new'));
      batcher.flush();
      assert.deepEqual(writes, ['old ', 'new']);
      // The continuation byte of the dropped sequence must not resurrect it either.
      batcher.push(Buffer.concat([euro.subarray(2), Buffer.from('x')]));
      batcher.flush();
      assert.ok(!writes.join('').includes('\u20ac'));
    });

    it('without a reset, the same bytes join into one character (control)', () => {
      const { writes, batcher } = make();
      const euro = Buffer.from('\u20ac', 'utf8');
      batcher.push(euro.subarray(0, 2));
      batcher.push(Buffer.concat([euro.subarray(2), Buffer.from('new')]));
      batcher.flush();
      assert.deepEqual(writes, ['\u20acnew']);
    });

    it('keeps working normally after a reset', () => {
      const { writes, batcher } = make();
      batcher.reset();
      const bytes = Buffer.from(SAMPLE, 'utf8');
      batcher.push(bytes.subarray(0, 7));
      batcher.push(bytes.subarray(7));
      batcher.flush();
      assert.equal(writes.join(''), SAMPLE);
    });
  });

  describe('dispose', () => {
    it('writes what is pending, then never writes again', async () => {
      const { writes, batcher } = make({});
      batcher.push(Buffer.from('last words'));
      batcher.dispose();
      assert.deepEqual(writes, ['last words']);
      batcher.push(Buffer.from('after dispose'));
      batcher.flush();
      batcher.reset();
      await delay(20);
      assert.deepEqual(writes, ['last words']);
    });

    it('cancels a pending timer', async () => {
      const { writes, batcher } = make({});
      batcher.dispose();
      batcher.push(Buffer.from('x'));
      await delay(20);
      assert.deepEqual(writes, []);
    });

    it('leaves no pending flush behind, however many chunks were pushed', () => {
      const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Immediate').length;
      const before = timers();
      const { batcher } = make({});
      for (let i = 0; i < 10; i++) batcher.push(Buffer.from(`chunk ${i}`));
      assert.equal(timers(), before + 1, 'one pending flush for the whole batch');
      batcher.dispose();
      assert.equal(timers(), before);
    });

    it('does not pause after dispose', () => {
      const { events, batcher } = make({ highWaterMark: 1 });
      batcher.dispose();
      batcher.push(Buffer.from('xxxxxxxx'));
      assert.deepEqual(events, []);
    });
  });
});
