// Shared helpers for the end-to-end tests: driving the sandbox and the services, and failing any
// test that logs a browser console error.
import { test as base, expect, Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const repo = path.resolve(__dirname, '../..');

function run(script: string, args: string[]): string {
  return execFileSync('bash', [path.join(repo, script), ...args], {
    encoding: 'utf8',
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** end2end/sandbox/sandbox.sh: the namespaces, the flows, conntrack-tools as the reference. */
export const sandbox = (...args: string[]) => run('end2end/sandbox/sandbox.sh', args).trim();

/** scripts/services.sh: start and stop the helper and the server as the demo does. */
export const services = (...args: string[]) => run('scripts/services.sh', args);

/** A page that fails its test on any console error or uncaught exception. */
export const test = base.extend<{ page: Page }>({
  page: async ({ page }, use) => {
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`${message.text()} (${message.location().url})`);
    });
    page.on('pageerror', (error) => errors.push(error.message));
    await use(page);
    expect(errors, 'browser console errors').toEqual([]);
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
