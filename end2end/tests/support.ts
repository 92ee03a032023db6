// Shared helpers for the end-to-end tests: driving the sandbox and the services, and failing any
// test that logs a browser console error or makes the server log an error it did not expect.
import { test as base, expect, Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const repo = path.resolve(__dirname, '../..');

function run(script: string, args: string[]): string {
  try {
    return execFileSync('bash', [path.join(repo, script), ...args], {
      encoding: 'utf8',
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    // Say what the script said, not only that it failed.
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${script} ${args.join(' ')} failed${stderr ? `: ${stderr}` : ''}`);
  }
}

/** end2end/sandbox/sandbox.sh: the namespaces, the flows, conntrack-tools as the reference. */
export const sandbox = (...args: string[]) => run('end2end/sandbox/sandbox.sh', args).trim();

/** scripts/services.sh: start and stop the helper and the server as the demo does. */
export const services = (...args: string[]) => run('scripts/services.sh', args);

/** Where end2end/run.sh keeps the services' logs and the helper's state. */
export const runDir = () => process.env.CTGUARD_RUN_DIR ?? '/run/ctguard-e2e';

/** Where the suite saves what a person should look at (screenshots), kept by CI as artifacts. */
export const artifactsDir = () => path.join(repo, 'end2end', 'artifacts');

const serverLog = () => path.join(runDir(), 'server.log');

function serverLogSize(): number {
  try {
    return fs.statSync(serverLog()).size;
  } catch {
    return 0;
  }
}

/** The server's ERROR lines (and panics) written after `offset`, without colour codes. */
function serverErrorsSince(offset: number): string[] {
  let text = '';
  try {
    const fd = fs.openSync(serverLog(), 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const from = size >= offset ? offset : 0; // the log was truncated: read it all
      const buffer = Buffer.alloc(size - from);
      fs.readSync(fd, buffer, 0, buffer.length, from);
      text = buffer.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.replace(/\x1b\[[0-9;]*m/g, ''))
    .filter((line) => /\bERROR\b|panicked at/.test(line));
}

/**
 * A page that fails its test on any browser console error or uncaught exception, and on any
 * server ERROR line logged while the test ran, unless the test expects it
 * (`test.use({ expectedServerErrors: [/helper request failed/] })`; likewise
 * `expectedConsoleErrors`, e.g. for the 400 of a change the server refuses).
 */
export const test = base.extend<{
  page: Page;
  expectedServerErrors: RegExp[];
  expectedConsoleErrors: RegExp[];
}>({
  expectedServerErrors: [[], { option: true }],
  expectedConsoleErrors: [[], { option: true }],
  page: async ({ page, expectedServerErrors, expectedConsoleErrors }, use) => {
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const line = `${message.text()} (${message.location().url})`;
      if (!expectedConsoleErrors.some((pattern) => pattern.test(line))) errors.push(line);
    });
    page.on('pageerror', (error) => errors.push(error.message));
    const logOffset = serverLogSize();
    await use(page);
    expect(errors, 'browser console errors').toEqual([]);
    const unexpected = serverErrorsSince(logOffset).filter(
      (line) => !expectedServerErrors.some((pattern) => pattern.test(line)),
    );
    expect(unexpected, 'unexpected server error log lines').toEqual([]);
  },
});

export { expect };

export type Role = 'viewer' | 'operator' | 'admin';

/** The suite's accounts (made by end2end/run.sh): e2e-viewer, e2e-operator, e2e-admin. */
export const account = (role: Role) => `e2e-${role}`;
const password = () => {
  const value = process.env.CTGUARD_E2E_PASSWORD;
  if (!value) throw new Error('CTGUARD_E2E_PASSWORD is not set: run the suite through end2end/run.sh');
  return value;
};

/** Signs in through the login page, by keyboard, and waits for the hydrated dashboard. */
export async function signIn(page: Page, role: Role) {
  await page.goto('/login');
  await page.getByLabel('Username').fill(account(role));
  await page.getByLabel('Password').fill(password());
  await page.getByLabel('Password').press('Enter');
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(page.getByTestId('who')).toHaveAttribute('data-role', role);
}

/** Opens a page of the panel and waits until it is live (its lazily loaded chunk hydrated too). */
export async function visit(page: Page, path: string) {
  await page.goto(path);
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
}

/** Signs in as a viewer and waits until the wasm bundle has hydrated the dashboard. */
export async function openDashboard(page: Page) {
  await signIn(page, 'viewer');
}

/** The entry count the dashboard shows now. */
export async function shownCount(page: Page): Promise<number> {
  return Number(await page.getByTestId('count').getAttribute('data-value'));
}

/** Runs a command inside the sandbox's router namespace (where the helper works) and returns stdout. */
export function inHost(...args: string[]): string {
  const host = `${process.env.CTGUARD_SANDBOX ?? 'ctg'}-host`;
  return execFileSync('ip', ['netns', 'exec', host, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** How many conntrack entries the router holds from one source address. */
export function entriesFrom(address: string): number {
  return inHost('conntrack', '-L', '-s', address)
    .split('\n')
    .filter((line) => line.trim() !== '').length;
}

/** Whether the product's nftables table in the router mentions the address. */
export function nftHolds(address: string): boolean {
  let table = '';
  try {
    table = inHost('nft', 'list', 'table', 'inet', 'ctguard');
  } catch {
    return false; // no table at all
  }
  return table.includes(address);
}

/** Whether the sandbox's legitimate client (203.0.113.10) reaches the guest's service now. */
export function clientConnects(): boolean {
  try {
    sandbox('client-check');
    return true;
  } catch {
    return false;
  }
}

/** The global nf_conntrack_max, as the kernel says now. */
export function globalMax(): number {
  return Number(fs.readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8').trim());
}

/**
 * One of the helper's persisted files, or '' when it has none yet: `90-ctguard.conf` (global
 * keys; an install links it into /etc/sysctl.d) or `netns.conf` (keys of the namespace it
 * watches with `--netns`, re-applied there at start, never applied to the host at boot).
 */
export function persistedFile(name: string): string {
  const stateDir = process.env.CTGUARD_HELPER_STATE_DIR ?? path.join(runDir(), 'helper-state');
  const file = path.join(stateDir, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}
