/**
 * The standard Prometheus process metrics (the names client libraries use, so existing dashboards
 * work): CPU time, resident memory, start time and open file descriptors. They are read by a
 * collector of the registry, when a scrape renders it, so they cost nothing between scrapes.
 */
import { readdirSync } from 'node:fs';
import type { Registry } from './registry.js';

/** Registers the process_* families in `registry`, and their collector. */
export function registerProcessMetrics(registry: Registry): void {
  const cpu = registry
    .counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.')
    .with({});
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.').with({});
  const fds = registry.gauge('process_open_fds', 'Number of open file descriptors.').with({});
  const start = registry
    .gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.')
    .with({});
  start.set(Math.round((Date.now() - process.uptime() * 1000) / 1000));
  let cpuSecondsSeen = 0;

  registry.addCollector(() => {
    const { user, system } = process.cpuUsage();
    const cpuSeconds = (user + system) / 1e6;
    cpu.inc(cpuSeconds - cpuSecondsSeen);
    cpuSecondsSeen = Math.max(cpuSeconds, cpuSecondsSeen);
    rss.set(process.memoryUsage.rss());
    try {
      // One entry is the descriptor readdir itself holds open.
      fds.set(readdirSync('/proc/self/fd').length - 1);
    } catch {
      // Not Linux: the gauge keeps its last value (0).
    }
  });
}
