import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { test } from 'node:test';
import { sampleSum } from '../../../test/support/prom-text.js';
import { registerProcessMetrics } from './process-metrics.js';
import { Registry } from './registry.js';

test('process metrics are read at each render: CPU only grows, RSS and fds follow the process', () => {
  const registry = new Registry();
  registerProcessMetrics(registry);
  const first = registry.render();
  const rss = sampleSum(first, 'process_resident_memory_bytes', {});
  assert.ok(rss > 10 * 1024 * 1024 && rss < 4 * 1024 ** 3, `rss ${rss}`);
  const start = sampleSum(first, 'process_start_time_seconds', {});
  assert.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) < 2, `start ${start}`);
  const cpu0 = sampleSum(first, 'process_cpu_seconds_total', {});
  const fds0 = sampleSum(first, 'process_open_fds', {});
  assert.ok(fds0 >= 3);

  // Burn ~50 ms of CPU and hold one more descriptor: the next render shows both.
  // (CPU time, not wall time: a busy loop on a loaded machine may get less than it waits.)
  const burnedFrom = process.cpuUsage();
  while (process.cpuUsage(burnedFrom).user < 50_000);
  const fd = openSync('/dev/null', 'r');
  try {
    const second = registry.render();
    assert.ok(sampleSum(second, 'process_cpu_seconds_total', {}) >= cpu0 + 0.04);
    assert.equal(sampleSum(second, 'process_open_fds', {}), fds0 + 1);
  } finally {
    closeSync(fd);
  }
});
