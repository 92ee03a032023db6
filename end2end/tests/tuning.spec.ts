// The Tuning page beyond the seed's story (story.spec.ts raises the limit, lowers the established
// timeout and reverts a change): a cancelled change leaves the kernel alone, a value another agent
// (kube-proxy, a config manager) sets back behind the panel's back is shown as drift, and an
// operator sees the settings but the server refuses them a change.
import { test, expect, signIn, inHost, persistedSysctls } from './support';

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
    expect(persistedSysctls()).toContain(`${UDP} = ${wanted}\n`);

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
