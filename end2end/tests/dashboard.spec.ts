// The live dashboard against the real sandbox: the shown count follows the real table, and the page
// says plainly when the helper is gone and recovers by itself.
import { test, expect, sandbox, services, openDashboard, shownCount } from './support';

test('the dashboard hydrates and its count follows new flows in the sandbox', async ({ page }) => {
  await openDashboard(page);
  await expect(page.getByTestId('count')).toBeVisible();
  const before = await shownCount(page);

  sandbox('flows', '300');
  const reference = Number(sandbox('count'));
  expect(reference).toBeGreaterThanOrEqual(before + 300);

  // No reload: the live stream updates the page, and it shows what conntrack -C shows.
  await expect.poll(() => shownCount(page), { timeout: 10_000 }).toBe(reference);
  await expect(page.getByTestId('max')).toHaveAttribute('data-value', /^[1-9][0-9]*$/);
  await expect(page.getByTestId('fill-percent')).toContainText('%');
});

test('the page says when the helper is down and recovers when it is back', async ({ page }) => {
  await openDashboard(page);
  await expect(page.getByTestId('count')).toBeVisible();

  services('helper-stop');
  try {
    const banner = page.getByTestId('helper-down');
    await expect(banner).toBeVisible({ timeout: 10_000 });
    await expect(banner).toContainText('Helper unavailable');
    await expect(page.getByTestId('count')).toHaveCount(0);
  } finally {
    services('helper-start');
  }
  await expect(page.getByTestId('helper-down')).toHaveCount(0, { timeout: 10_000 });
  await expect(page.getByTestId('count')).toBeVisible();
});
