// The seed's story, part 3: an admin raises nf_conntrack_max and lowers
// nf_conntrack_tcp_timeout_established through the Tuning page and its confirmation; the test reads
// the kernel's values (/proc/sys: the limit is global, the timeout lives in the router namespace)
// and the helper's persisted file; then one change is reverted from the audit page. The global
// limit is put back whatever happens.
import fs from 'node:fs';
import path from 'node:path';
import { test, expect, signIn, inHost } from './support';

const MAX = 'net.netfilter.nf_conntrack_max';
const ESTABLISHED = 'net.netfilter.nf_conntrack_tcp_timeout_established';
const MAX_PATH = '/proc/sys/net/netfilter/nf_conntrack_max';

const thousands = (n: number) => n.toLocaleString('en-US');
const hostMax = () => Number(fs.readFileSync(MAX_PATH, 'utf8').trim());
const routerEstablished = () => Number(inHost('sysctl', '-n', ESTABLISHED).trim());
const persisted = () => {
  const file = path.join(process.env.CTGUARD_RUN_DIR ?? '/run/ctguard-e2e', 'helper-state', '90-ctguard.conf');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
};

test.describe.configure({ mode: 'serial' });

test('an admin raises the limit and lowers the established timeout; the kernel and the persisted file agree', async ({
  page,
}) => {
  const originalMax = hostMax();
  const originalEstablished = routerEstablished();
  const raised = originalMax + 4096;
  try {
    await signIn(page, 'admin');
    await page.getByRole('link', { name: 'Tuning' }).click();
    const maxRow = page.getByTestId(`setting-${MAX}`);
    await expect(maxRow).toHaveAttribute('data-value', String(originalMax));

    // By keyboard: type the value, Enter opens the preview.
    const maxInput = maxRow.getByLabel('New value (entries)');
    await maxInput.fill(String(raised));
    await maxInput.press('Enter');
    const dialog = page.getByTestId('confirm-dialog');
    await expect(dialog).toContainText(`Set ${MAX}`);
    await expect(dialog).toContainText(`${thousands(originalMax)} entries → ${thousands(raised)} entries`);
    await expect(dialog).toContainText('a full table would take');
    await expect(dialog).toContainText('Host-wide');
    // Cancel first: nothing changes in the kernel.
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
    expect(hostMax()).toBe(originalMax);

    await maxInput.press('Enter');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await expect(page.getByTestId('operation-done')).toContainText(`${MAX} is now ${thousands(raised)} entries`);
    expect(hostMax()).toBe(raised);
    expect(persisted()).toContain(`${MAX} = ${raised}\n`);
    await expect(maxRow).toHaveAttribute('data-value', String(raised));

    // The recommended established timeout: RFC 5382's floor of 2 h 4 min.
    const establishedRow = page.getByTestId(`setting-${ESTABLISHED}`);
    await expect(establishedRow).toContainText('RFC 5382');
    await establishedRow.getByRole('button', { name: 'Apply recommended…' }).click();
    await expect(dialog).toContainText(`→ 7440 s (2 h 4 min)`);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await expect(page.getByTestId('operation-done')).toContainText(`${ESTABLISHED} is now 7440 s`);
    expect(routerEstablished()).toBe(7440);
    expect(persisted()).toContain(`${ESTABLISHED} = 7440\n`);
    await expect(establishedRow).toHaveAttribute('data-value', '7440');

    // Another agent sets the timeout back behind the panel's back: the page says so.
    inHost('sysctl', '-q', '-w', `${ESTABLISHED}=${originalEstablished}`);
    await page.reload();
    await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
    await expect(establishedRow).toHaveAttribute('data-drifted', 'true');
    await expect(page.getByTestId('drift-banner')).toContainText(ESTABLISHED);
    inHost('sysctl', '-q', '-w', `${ESTABLISHED}=7440`);
  } finally {
    fs.writeFileSync(MAX_PATH, String(originalMax));
  }
});

test('the admin reverts the timeout change from its audit record', async ({ page }) => {
  const before = routerEstablished();
  expect(before).toBe(7440);
  await signIn(page, 'admin');
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByLabel('Action').fill('set_sysctl');
  await page.getByLabel('Action').press('Enter');
  const record = page
    .getByTestId('audit')
    .locator('tr[data-outcome="success"]', { hasText: ESTABLISHED })
    .first();
  await expect(record).toContainText('e2e-admin');
  await expect(record).toContainText(/#\d+/); // the helper's journal record
  await record.getByRole('button', { name: 'Revert…' }).click();
  const dialog = page.getByTestId('confirm-dialog');
  await expect(dialog).toContainText('Revert audit record');
  await expect(dialog).toContainText('7440 s (2 h 4 min) →');
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('operation-done')).toContainText(`${ESTABLISHED} is now`);
  expect(routerEstablished()).not.toBe(7440);

  // The audit log lists the change, the revert and their actor; the CSV export has them.
  const csv = await (await page.request.get('/audit.csv?action=revert_sysctl')).text();
  expect(csv).toContain('e2e-admin');
  expect(csv).toContain('Revert audit record');
});

test('an operator sees the settings but cannot change them', async ({ page }) => {
  await signIn(page, 'operator');
  await page.getByRole('link', { name: 'Tuning' }).click();
  await expect(page.getByTestId(`setting-${MAX}`)).toBeVisible();
  await expect(page.getByRole('button', { name: 'Review…' })).toHaveCount(0);
  // A direct request is refused by the server.
  const response = await page.request.post('/api/preview_tuning', {
    data: { operation: { kind: 'set_sysctl', key: MAX, value: 1048576, persist: false } },
  });
  expect(response.status()).toBe(403);
});
