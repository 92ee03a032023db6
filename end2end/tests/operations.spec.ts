// The seed's procedure through the panel: see who fills the table, block it through the server's
// confirmation, watch the kernel drop it, unblock it; cancel changes nothing; viewers cannot block.
import { test, expect, sandbox, signIn, visit, entriesFrom, nftHolds } from './support';

const ATTACKER = '203.0.113.66';

test.describe.configure({ mode: 'serial' });

test('a viewer sees the flooder as suspicious but has no block buttons', async ({ page }) => {
  sandbox('flows', '3000', '9999', ATTACKER);
  await signIn(page, 'viewer');
  await page.getByRole('link', { name: 'Suspicious sources' }).click();
  const row = page.getByTestId(`suspect-${ATTACKER}`);
  await expect(row).toContainText('unreplied: likely a flood or scan');
  await expect(page.getByTestId('suspects').locator('tbody tr').first()).toHaveAttribute(
    'data-testid',
    `suspect-${ATTACKER}`,
  );
  await expect(row.getByRole('button', { name: 'Block…' })).toHaveCount(0);

  // Drill-down shows the attacker's entries.
  await row.getByRole('button', { name: 'Entries' }).click();
  await expect(page.getByTestId('entries-panel')).toContainText(ATTACKER);
});

test('an operator blocks the flooder through the confirmation; cancel first changes nothing', async ({ page }) => {
  expect(entriesFrom(ATTACKER)).toBeGreaterThan(1000);
  await signIn(page, 'operator');
  await visit(page, '/suspicious');
  const row = page.getByTestId(`suspect-${ATTACKER}`);
  await row.getByRole('button', { name: 'Block…' }).click();
  const form = page.getByTestId('block-form');
  await expect(form.getByTestId('block-target-text')).toHaveText(`from ${ATTACKER}`);
  await expect(form.getByLabel('Reason')).toHaveValue(/unreplied/);

  // Preview, then cancel: the kernel is untouched.
  await form.getByRole('button', { name: 'Block…' }).click();
  const dialog = page.getByTestId('confirm-dialog');
  await expect(dialog).toContainText(`Block from ${ATTACKER}`);
  await expect(dialog).toContainText('delete its existing entries');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect(nftHolds(ATTACKER)).toBe(false);
  expect(entriesFrom(ATTACKER)).toBeGreaterThan(1000);

  // Preview again and confirm.
  await form.getByRole('button', { name: 'Block…' }).click();
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('operation-done')).toContainText(`Blocked from ${ATTACKER}`);
  expect(nftHolds(ATTACKER)).toBe(true);
  expect(entriesFrom(ATTACKER)).toBe(0);

  // The flood goes on, and the kernel drops it before conntrack: no new entries.
  sandbox('flows', '500', '9999', ATTACKER);
  expect(entriesFrom(ATTACKER)).toBe(0);

  await page.getByRole('link', { name: 'Blocks' }).click();
  await expect(page.getByTestId(`block-from ${ATTACKER}`)).toContainText('e2e-operator');
});

test('an operator unblocks it from the Blocks page', async ({ page }) => {
  await signIn(page, 'operator');
  await visit(page, '/blocks');
  const row = page.getByTestId(`block-from ${ATTACKER}`);
  await row.getByRole('button', { name: 'Unblock…' }).click();
  const dialog = page.getByTestId('confirm-dialog');
  await expect(dialog).toContainText(`Unblock from ${ATTACKER}`);
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('operation-done')).toContainText(`Unblocked from ${ATTACKER}`);
  await expect(page.getByTestId('no-blocks')).toBeVisible();
  expect(nftHolds(ATTACKER)).toBe(false);
  sandbox('flows', '100', '9999', ATTACKER);
  expect(entriesFrom(ATTACKER)).toBeGreaterThanOrEqual(100);
});

test('the audit page lists the block and the unblock with the actor, and the CSV has them', async ({ page }) => {
  await signIn(page, 'admin');
  await page.getByRole('link', { name: 'Audit' }).click();
  await page.getByLabel('Action').fill('block');
  await page.getByLabel('Action').press('Enter');
  const table = page.getByTestId('audit');
  await expect(table).toContainText('e2e-operator');
  await expect(table).toContainText(`Block from ${ATTACKER}`);
  await expect(table.locator('tr[data-outcome="success"]')).not.toHaveCount(0);

  const csv = await page.request.get('/audit.csv?action=unblock');
  expect(csv.status()).toBe(200);
  const text = await csv.text();
  expect(text).toContain('e2e-operator');
  expect(text).toContain(`from ${ATTACKER}`);
});
