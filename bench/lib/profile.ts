/**
 * In-process CPU profiling (the same data as `node --cpu-prof`, limited to one measured window).
 * Writes the .cpuprofile to the OS temp folder and returns the top functions by self time.
 */
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export function startProfile(): { stop(name: string): Promise<string[]> } {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result))));
  const started = post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: 200 })).then(() => post('Profiler.start'));
  return {
    async stop(name: string): Promise<string[]> {
      await started;
      const { profile } = (await post('Profiler.stop')) as { profile: { nodes: ProfileNode[]; samples: number[] } };
      session.disconnect();
      const path = join(tmpdir(), `tether-bench-${name}-${Date.now()}.cpuprofile`);
      writeFileSync(path, JSON.stringify(profile));
      const total = profile.samples.length || 1;
      const self = new Map<string, number>();
      for (const node of profile.nodes) {
        const where = node.callFrame.url ? `${node.callFrame.url.replace(/^.*\/(node_modules\/|src\/)/, '$1')}:${node.callFrame.lineNumber + 1}` : '';
        const key = `${node.callFrame.functionName || '(anonymous)'} ${where}`.trim();
        self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0));
      }
      const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12);
      return [`profile: ${path}`, ...top.map(([key, hits]) => `${((100 * hits) / total).toFixed(1)}% ${key}`)];
    },
  };
}
