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

/** Opens the dashboard and waits until the wasm bundle has hydrated it. */
export async function openDashboard(page: Page) {
  await page.goto('/');
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
}

/** The entry count the dashboard shows now. */
export async function shownCount(page: Page): Promise<number> {
  return Number(await page.getByTestId('count').getAttribute('data-value'));
}
