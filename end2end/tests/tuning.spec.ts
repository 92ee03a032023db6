// The Tuning page beyond the seed's story (story.spec.ts raises the limit, lowers the established
// timeout and reverts a change): a cancelled change leaves the kernel alone, a value another agent
// (kube-proxy, a config manager) sets back behind the panel's back is shown as drift, an
// established timeout below RFC 5382's floor takes two confirmations, the buckets are never
// advised below their value, and an operator sees the settings but the server refuses them a change.
import { test, expect, signIn, inHost, persistedFile } from './support';

const MAX = 'net.netfilter.nf_conntrack_max';
const ESTABLISHED = 'net.netfilter.nf_conntrack_tcp_timeout_established';
const UDP = 'net.netfilter.nf_conntrack_udp_timeout';

const routerValue = (key: string) => Number(inHost('sysctl', '-n', key).trim());

test('cancel leaves the kernel alone; a value changed back behind the panel is shown as drift', async ({
  page,
}) => {
  const original = routerValue(UDP);
  const wanted = original === 45 ? 60 : 45;
  try {
    await signIn(page, 'admin');
    await page.getByRole('link', { name: 'Tuning' }).click();
    const row = page.getByTestId(`setting-${UDP}`);
    await expect(row).toHaveAttribute('data-value', String(original));

    // By keyboard: type the value, Enter opens the preview; cancel changes nothing.
    const input = row.getByLabel('New value (seconds)');
    await input.fill(String(wanted));
    await input.press('Enter');
    const dialog = page.getByTestId('confirm-dialog');
    await expect(dialog).toContainText(`Set ${UDP}`);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toHaveCount(0);
    expect(routerValue(UDP)).toBe(original);

    await input.press('Enter');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await expect(page.getByTestId('operation-done')).toContainText(`${UDP} is now ${wanted} s`);
    expect(routerValue(UDP)).toBe(wanted);
    // A key of the watched namespace is persisted for the helper to re-apply there, never in
    // the file the boot applies to the host's own namespace.
    expect(persistedFile('netns.conf')).toContain(`${UDP} = ${wanted}\n`);
    expect(persistedFile('90-ctguard.conf')).not.toContain(UDP);

    // Another agent sets it back: the page says so.
    inHost('sysctl', '-q', '-w', `${UDP}=${original}`);
    await page.reload();
    await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
    await expect(row).toHaveAttribute('data-drifted', 'true');
    await expect(page.getByTestId('drift-banner')).toContainText(UDP);
  } finally {
    inHost('sysctl', '-q', '-w', `${UDP}=${original}`);
  }
});

test('an operator sees the settings but cannot change them', async ({ page }) => {
  await signIn(page, 'operator');
  await page.getByRole('link', { name: 'Tuning' }).click();
  await expect(page.getByTestId(`setting-${MAX}`)).toBeVisible();
  await expect(page.getByTestId(`setting-${ESTABLISHED}`)).toBeVisible();
  await expect(page.getByRole('button', { name: 'Review…' })).toHaveCount(0);
  // A direct request, with the panel's origin so that the role check is what answers: refused.
  const response = await page.request.post('/api/preview_tuning', {
    headers: { origin: new URL(page.url()).origin },
    data: { operation: { kind: 'set_sysctl', key: MAX, value: 1048576, persist: false } },
  });
  expect(response.status()).toBe(403);
  expect(await response.text()).toContain('Your role does not allow this');
});

test.describe('below the floor', () => {
  // The first confirmation is answered 400 (nothing changed yet), which the browser reports.
  test.use({ expectedConsoleErrors: [/status of 400 \(Bad Request\) \(.*\/api\/apply_tuning\)/] });

  test("an established timeout below RFC 5382's floor takes a second, explicit confirmation", async ({ page }) => {
    const original = routerValue(ESTABLISHED);
    try {
      await signIn(page, 'admin');
      await page.getByRole('link', { name: 'Tuning' }).click();
      const input = page.getByTestId(`setting-${ESTABLISHED}`).getByLabel('New value (seconds)');
      await input.fill('180');
      await input.press('Enter');
      const dialog = page.getByTestId('confirm-dialog');
      await expect(dialog).toContainText('Below RFC 5382');
      await expect(dialog).toContainText('two confirmations');
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      // The first confirmation changes nothing; the panel asks again at once.
      await expect(page.getByTestId('operation-first-confirmation')).toContainText('First of two confirmations');
      await expect(dialog).toContainText('(second confirmation)');
      expect(routerValue(ESTABLISHED)).toBe(original);
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      await expect(dialog).toHaveCount(0);
      expect(routerValue(ESTABLISHED)).toBe(original);
    } finally {
      inHost('sysctl', '-q', '-w', `${ESTABLISHED}=${original}`);
    }
  });
});

test('the buckets are never advised below their value', async ({ page }) => {
  await signIn(page, 'viewer');
  await page.getByRole('link', { name: 'Tuning' }).click();
  const row = page.getByTestId('setting-net.netfilter.nf_conntrack_buckets');
  const now = Number(await row.getAttribute('data-value'));
  const advised = (await row.getByTestId('recommended').textContent()) ?? '';
  if (advised.trim() !== 'keep') {
    expect(Number(advised.replace(/[^0-9]/g, ''))).toBeGreaterThanOrEqual(now);
  }
  await expect(row).toContainText('each in two chains');
});
