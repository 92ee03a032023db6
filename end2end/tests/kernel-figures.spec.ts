// Every figure the dashboard shows, checked against the kernel's own tools in the same window:
// conntrack -C and -S in the router's namespace (the table the helper watches), the limit and the
// buckets from /proc/sys, the nf_conntrack slab from /proc/slabinfo, the assured entries from
// conntrack -L, and the kernel log's "table full" lines from dmesg, where 6.17+ names the
// namespace ("table full in netns N, dropping packet"). A reading of the kernel is taken before
// and after the page's figures, which must lie between the two.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Page } from '@playwright/test';
import { test, expect, sandbox, openDashboard, inHost } from './support';

/** What the kernel says now, as its own tools print it. */
interface KernelReading {
  atMs: number;
  count: number;
  max: number;
  buckets: number;
  /** conntrack -S summed over CPUs, by counter name. */
  stats: Record<string, number>;
  slab: { active: number; objsize: number };
  assured: number;
}

function conntrackStats(): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const line of inHost('conntrack', '-S').split('\n')) {
    for (const field of line.trim().split(/\s+/)) {
      const [name, value] = field.split('=');
      if (!name || value === undefined || name === 'cpu') continue;
      totals[name] = (totals[name] ?? 0) + Number(value);
    }
  }
  return totals;
}

function slab(): { active: number; objsize: number } {
  const line = fs
    .readFileSync('/proc/slabinfo', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('nf_conntrack '));
  if (!line) throw new Error('no nf_conntrack line in /proc/slabinfo');
  const [, active, , objsize] = line.split(/\s+/);
  return { active: Number(active), objsize: Number(objsize) };
}

const assuredEntries = () =>
  inHost('conntrack', '-L')
    .split('\n')
    .filter((line) => line.includes('[ASSURED]')).length;

function kernel(): KernelReading {
  const atMs = Date.now();
  return {
    atMs,
    count: Number(inHost('conntrack', '-C').trim()),
    max: Number(inHost('sysctl', '-n', 'net.netfilter.nf_conntrack_max').trim()),
    buckets: Number(inHost('sysctl', '-n', 'net.netfilter.nf_conntrack_buckets').trim()),
    stats: conntrackStats(),
    slab: slab(),
    assured: assuredEntries(),
  };
}

/** The router namespace's inode: what the kernel prints as `netns N`. */
const routerInode = () => Number(/net:\[(\d+)\]/.exec(inHost('readlink', '/proc/self/ns/net'))![1]);

/** dmesg's "table full" lines of the last 10 minutes naming the namespace (6.17+ form). */
function tableFullLines(inode: number): number {
  const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const wording = `nf_conntrack: table full in netns ${inode}, dropping packet`;
  return execFileSync('dmesg', { encoding: 'utf8' })
    .split('\n')
    .filter((line) => {
      const at = /^\[\s*(\d+\.\d+)\]/.exec(line);
      return at !== null && Number(at[1]) >= uptime - 600 && line.includes(wording);
    }).length;
}

/** Every figure the dashboard shows now, read in one go from one rendered sample. */
async function shown(page: Page) {
  return page.evaluate(() => {
    const value = (id: string) => {
      const element = document.querySelector(`[data-testid="${id}"]`);
      const raw = element?.getAttribute('data-value');
      return raw === null || raw === undefined || raw === '' ? null : Number(raw);
    };
    return {
      atMs: Number(document.querySelector('[data-testid="gauge"]')?.getAttribute('data-at-ms')),
      count: value('count'),
      max: value('max'),
      buckets: value('buckets'),
      drop: value('drop'),
      early_drop: value('early-drop'),
      insert_failed: value('insert-failed'),
      chaintoolong: value('chaintoolong'),
      clash_resolve: value('clash-resolve'),
      memory: value('memory'),
      memoryNamespace: value('memory-namespace'),
      memoryLimit: value('memory-limit'),
      entry: value('memory-entry'),
      assured: value('assured'),
      assuredAtMs: value('assured-at'),
      tableFull: value('kernel-log-table-full'),
      netns: Number(document.querySelector('[data-testid="kernel-log-table-full"]')?.getAttribute('data-netns')),
    };
  });
}

/** A sample read by the server after `sinceMs`. */
async function sampleAfter(page: Page, sinceMs: number) {
  await expect
    .poll(async () => (await shown(page)).atMs, { timeout: 10_000 })
    .toBeGreaterThan(sinceMs);
  return shown(page);
}

const between = (value: number | null, a: number, b: number) => {
  expect(value).not.toBeNull();
  expect(value!).toBeGreaterThanOrEqual(Math.min(a, b));
  expect(value!).toBeLessThanOrEqual(Math.max(a, b));
};

test.describe.configure({ mode: 'serial' });

test('each dashboard figure equals the kernel\'s in the same window', async ({ page }) => {
  // A walk for the assured entries comes at most every 30 s.
  test.setTimeout(120_000);
  // A few assured entries (a completed TCP connection each, in TIME_WAIT for 2 minutes) beside
  // the sandbox's unreplied UDP flows.
  for (let i = 0; i < 3; i++) sandbox('client-check');
  const setupMs = Date.now();
  await openDashboard(page);

  // The gauge's assured figure comes from a walk at most 30 s apart: wait for one made after the
  // setup, while the table is quiet.
  await expect
    .poll(async () => (await shown(page)).assuredAtMs ?? 0, { timeout: 45_000 })
    .toBeGreaterThan(setupMs);

  const before = kernel();
  const page_ = await sampleAfter(page, before.atMs);
  const after = kernel();

  between(page_.count, before.count, after.count);
  expect(page_.max).toBe(before.max);
  expect(page_.buckets).toBe(before.buckets);
  for (const name of ['drop', 'early_drop', 'insert_failed', 'chaintoolong', 'clash_resolve'] as const) {
    between(page_[name], before.stats[name], after.stats[name]);
  }

  // One entry: its slab object, plus the 128 B extension area when something needs it.
  expect([before.slab.objsize, before.slab.objsize + 128]).toContain(page_.entry);
  const entry = page_.entry!;
  const hash = before.buckets * 8;
  expect(page_.memoryNamespace).toBe(page_.count! * entry);
  expect(page_.memoryLimit).toBe(before.max * entry + hash);
  // In use: the slab's objects of every namespace (the host's own traffic moves them a little
  // between the two readings).
  const slack = 64;
  between(
    page_.memory,
    (Math.min(before.slab.active, after.slab.active) - slack) * entry + hash,
    (Math.max(before.slab.active, after.slab.active) + slack) * entry + hash,
  );

  // The assured entries of the walk, against conntrack -L's [ASSURED] lines around it.
  expect(before.assured).toBeGreaterThanOrEqual(3);
  between(page_.assured, before.assured, after.assured);

  // The kernel log: this table's, by the namespace the kernel names.
  const inode = routerInode();
  expect(page_.netns).toBe(inode);
  expect(page_.tableFull).toBe(tableFullLines(inode));
  await expect(page.getByTestId('kernel-log-suppressed')).toContainText(
    'network messages of every kind held back by the kernel\'s rate limit',
  );
});

test.describe('a table full of assured entries', () => {
  /** Small, so the connection flood fills it in seconds. */
  const LIMIT = 4096;

  test.beforeAll(() => {
    sandbox('flush');
    sandbox('limit', String(LIMIT));
    // Returns once the router's table is full; the flooder keeps trying new connections.
    sandbox('scenario', 'assured-flood', '300');
  });

  test.afterAll(() => {
    sandbox('scenario', 'stop');
    sandbox('flush');
    sandbox('limit', 'restore');
  });

  test('the kernel log, the assured share and the banner say what the kernel does', async ({ page }) => {
    test.setTimeout(150_000);
    await openDashboard(page);
    const inode = routerInode();

    // The kernel prints 6.17+'s form naming the router's namespace, and the page counts it as
    // this table's.
    await expect.poll(() => tableFullLines(inode), { timeout: 20_000 }).toBeGreaterThan(0);
    await expect
      .poll(async () => (await shown(page)).tableFull ?? 0, { timeout: 25_000 })
      .toBeGreaterThan(0);
    await expect(page.getByTestId('kernel-log-table-full')).toContainText(`for this table (netns ${inode})`);

    // Nearly the whole limit is assured, which the kernel cannot evict: the banner says the
    // kernel is dropping new connections, for that reason.
    const fullMs = Date.now();
    await expect
      .poll(async () => (await shown(page)).assuredAtMs ?? 0, { timeout: 45_000 })
      .toBeGreaterThan(fullMs);
    const before = assuredEntries();
    const figures = await shown(page);
    const after = assuredEntries();
    between(figures.assured, before, after);
    expect(figures.assured!).toBeGreaterThan(LIMIT * 0.9);
    const banner = page.getByTestId('fill-banner');
    await expect(banner).toHaveAttribute('data-eviction', 'unevictable');
    await expect(banner).toHaveAttribute('data-dropping', 'true', { timeout: 15_000 });
    await expect(banner).toContainText('The kernel is dropping new connections');
    await expect(banner).toContainText('assured entries, which it cannot evict');

    // Who is turned away (issue 15, items 2 and 7): the flooder's new connections, counted per
    // source before and after conntrack, named on the dashboard and on the Suspicious page,
    // adding up to the kernel's own drop statistic over the same window.
    const FLOODER = '203.0.113.77';
    await expect(page.getByTestId('top-turned-away')).toContainText(FLOODER, { timeout: 30_000 });
    const suspicious = await page.context().newPage();
    const refused = suspicious.getByTestId('turned-away-sources').getByRole('row').filter({ hasText: FLOODER });
    await expect
      .poll(
        async () => {
          await suspicious.goto('/suspicious');
          return refused.count();
        },
        { timeout: 30_000, intervals: [2_000] },
      )
      .toBe(1);
    const comparison = (await suspicious.getByTestId('turned-away-kernel').textContent()) ?? '';
    const [counted, kernel] = [...comparison.matchAll(/([\d,]+) (?:packets refused|drops?)/g)].map((m) =>
      Number(m[1].replaceAll(',', '')),
    );
    expect(kernel).toBeGreaterThan(0);
    expect(Math.abs(counted - kernel)).toBeLessThanOrEqual(Math.max(5, kernel * 0.02));
    await suspicious.close();

    // Once the flooder stops trying, no new lines come: the page's count (read every 10 s) is
    // dmesg's for this namespace in the last 10 minutes.
    sandbox('scenario', 'stop');
    await expect
      .poll(async () => (await shown(page)).tableFull === tableFullLines(inode), { timeout: 30_000 })
      .toBe(true);
  });
});
