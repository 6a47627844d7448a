/**
 * `weft up` / `weft down`: the local platform's front door (DESIGN.md §8). `up` runs the control
 * plane with its state in `.weft/` (or `--state DIR`) in the foreground, or with `--detach` in
 * the background (pid and log in the state directory) for scripts; `down` stops a detached one.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import {
  CONTROL_ENV_PREFIX,
  CONTROL_SETTINGS,
  type ControlPlaneAddresses,
} from '../control/control-plane.js';
import { settingOptions } from '../lib/config.js';
import { isProcessAlive } from '../lib/process-alive.js';
import { runControl } from './control.js';

const PID_FILE = 'control.pid';
const LOG_FILE = 'control.log';
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

export function registerUpCommands(program: Command): void {
  const up = program
    .command('up')
    .description('start the control plane (state in .weft/ unless --state DIR)');
  for (const [flags, doc] of settingOptions(CONTROL_SETTINGS, CONTROL_ENV_PREFIX)) up.option(flags, doc);
  up.option('--detach', 'run in the background; stop it with `weft down`');
  up.action(async (opts: Record<string, unknown>) => {
    process.exitCode = opts.detach ? await startDetached(opts) : await runControl(opts, announce);
  });
  program
    .command('down')
    .description('stop a control plane started with `weft up --detach`')
    .option('--state <dir>', 'its state directory', '.weft')
    .action(async (opts: { state: string }) => {
      process.exitCode = await stopDetached(opts.state);
    });
}

/** What a person reads when the control plane is up. */
export function renderUp(addresses: ControlPlaneAddresses, state: string, pid?: number): string {
  return [
    `Weft control plane is up${pid ? ` (pid ${pid})` : ''}.`,
    `  destination (gRPC): ${addresses.destination}`,
    `  API (HTTP/JSON):    http://${addresses.api}`,
    `  identity (TLS):     ${addresses.identity}`,
    `  state:              ${path.resolve(state)}`,
    '',
  ].join('\n');
}

function announce(addresses: ControlPlaneAddresses, state: string): void {
  process.stdout.write(renderUp(addresses, state));
}

async function startDetached(opts: Record<string, unknown>): Promise<number> {
  const state = typeof opts.state === 'string' ? opts.state : (process.env.WEFT_CONTROL_STATE ?? '.weft');
  mkdirSync(state, { recursive: true });
  const pidFile = path.join(state, PID_FILE);
  const running = readPid(pidFile);
  if (running && isProcessAlive(running)) {
    process.stderr.write(
      `weft: a control plane is already running from ${state} (pid ${running}); \`weft down\` stops it\n`,
    );
    return 1;
  }
  const args = [process.argv[1], 'control', '--state', state];
  for (const [key, value] of Object.entries(opts)) {
    if (key === 'detach' || key === 'state' || typeof value !== 'string') continue;
    args.push(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, value);
  }
  const logPath = path.join(state, LOG_FILE);
  const logFd = openSync(logPath, 'w');
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  writeFileSync(pidFile, `${child.pid}\n`);
  const ready = await waitForReady(logPath, child.pid!);
  if (!ready) {
    process.stderr.write(
      `weft: the control plane did not become ready; its log (${logPath}):\n${readFileSync(logPath, 'utf8')}`,
    );
    rmSync(pidFile, { force: true });
    return 1;
  }
  process.stdout.write(renderUp(ready, state, child.pid));
  return 0;
}

/** Polls the child's log for its ready line; undefined if it exits or the deadline passes. */
async function waitForReady(logPath: string, pid: number): Promise<ControlPlaneAddresses | undefined> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline && isProcessAlive(pid)) {
    for (const line of readFileSync(logPath, 'utf8').split('\n')) {
      if (!line.includes('"control plane ready"')) continue;
      const entry = JSON.parse(line) as ControlPlaneAddresses;
      return { destination: entry.destination, api: entry.api, identity: entry.identity };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

async function stopDetached(state: string): Promise<number> {
  const pidFile = path.join(state, PID_FILE);
  const pid = readPid(pidFile);
  if (!pid || !isProcessAlive(pid)) {
    rmSync(pidFile, { force: true });
    process.stdout.write(`no control plane is running from ${state}\n`);
    return 0;
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isProcessAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isProcessAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile, { force: true });
  process.stdout.write(`Weft control plane stopped (pid ${pid}).\n`);
  return 0;
}

function readPid(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
