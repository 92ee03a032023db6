// The fill thresholds and the forecast against the real sandbox: the server runs with a warning
// threshold just above the table's current fill (a setting of the server, passed by
// scripts/services.sh; nf_conntrack_max, which is global, is left alone), a flood of new flows
// pushes the gauge past it and the banner appears; after a flush the forecast says the table is
// draining (or, once the drop has left its window, stable).
import { test, expect, sandbox, services, openDashboard, shownCount } from './support';

/** Restarts the server with the given environment added (or the defaults when empty). */
function restartServer(env: Record<string, string>) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    services('server-start');
  } finally {
    for (const key of Object.keys(env)) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  }
}

test('a flood pushes the gauge past the warning threshold; after a flush the table drains', async ({ page }) => {
  await openDashboard(page);
  await expect(page.getByTestId('count')).toBeVisible();
  const max = Number(await page.getByTestId('max').getAttribute('data-value'));
  const before = await shownCount(page);
  // Warning 1,500 entries above today's count: the 3,000 flows below cross it.
  const warning = (((before + 1_500) / max) * 100).toFixed(3);

  // Leave the page first: a live stream cut by the restart is a console error in Chromium.
  await page.goto('about:blank');
  restartServer({ CTGUARD_WARNING_PERCENT: warning, CTGUARD_CRITICAL_PERCENT: '99' });
  try {
    await openDashboard(page);
    await expect(page.getByTestId('gauge')).toHaveAttribute('data-severity', 'normal');
    await expect(page.getByTestId('fill-banner')).toHaveCount(0);

    sandbox('flows', '3000', '9998', '203.0.113.66');

    // Live, without a reload: the gauge turns amber and the banner says why.
    await expect(page.getByTestId('gauge')).toHaveAttribute('data-severity', 'warning', { timeout: 10_000 });
    const banner = page.getByTestId('fill-banner');
    await expect(banner).toBeVisible();
    await expect(banner).toContainText('Warning');
    await expect(banner).toContainText(`threshold ${Number(warning)} %`);
    // The warning can come from a sample taken while the flows were still being sent: the next
    // samples show all of them.
    await expect
      .poll(() => shownCount(page), { timeout: 10_000 })
      .toBeGreaterThanOrEqual(before + 3_000);

    sandbox('flush');

    await expect(page.getByTestId('forecast')).toHaveAttribute('data-kind', /^(draining|stable)$/, {
      timeout: 10_000,
    });
    await expect(page.getByTestId('gauge')).toHaveAttribute('data-severity', 'normal');
    await expect(page.getByTestId('fill-banner')).toHaveCount(0);
  } finally {
    await page.goto('about:blank');
    restartServer({});
  }
});

test('the history charts and the memory cost are shown with their units', async ({ page }) => {
  await openDashboard(page);
  const recent = page.getByTestId('chart-recent');
  await expect(recent).toBeVisible();
  await expect(recent).toContainText('entries');
  await expect(recent).toContainText('now');
  await expect(recent).toContainText('−5 min');
  await expect(page.getByTestId('chart-day')).toContainText('−6 h');
  // The chart grows with the live stream.
  const points = async () => Number(await recent.getAttribute('data-points'));
  const first = await points();
  await expect.poll(points, { timeout: 10_000 }).toBeGreaterThan(first);
  await expect(page.getByTestId('memory')).toContainText(/B$/);
  await expect(page.getByTestId('forecast')).toBeVisible();
  await expect(page.getByTestId('kernel-log-table-full')).toBeVisible();
});
