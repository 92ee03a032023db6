// The panel on a 1366×768 screen, by keyboard: no page scrolls sideways, every form control has a
// label a screen reader and getByLabel can find, and focus is visible where Tab lands.
import { test, expect, signIn, Role } from './support';

const PAGES: [Role, string[]][] = [
  ['viewer', ['/', '/suspicious', '/blocks', '/tuning']],
  ['operator', ['/suspicious', '/blocks']],
  ['admin', ['/tuning', '/users', '/audit']],
];

test.use({ viewport: { width: 1366, height: 768 } });

for (const [role, paths] of PAGES) {
  test(`every page of the ${role} fits 1366 pixels and labels its controls`, async ({ page }) => {
    await signIn(page, role);
    for (const path of paths) {
      await page.goto(path);
      await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
      await expect(page.locator('main h1')).toBeVisible();
      // Let the page's data arrive (each page shows a "…" placeholder while it loads).
      await expect(page.locator('main p.muted', { hasText: '…' })).toHaveCount(0, { timeout: 15_000 });

      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      expect(overflow, `${path} scrolls sideways by ${overflow}px`).toBeLessThanOrEqual(0);

      const unlabelled = await page.evaluate(() =>
        Array.from(document.querySelectorAll('main input, main select, main textarea'))
          .filter((element) => {
            const control = element as HTMLInputElement;
            if (control.type === 'hidden') return false;
            return (control.labels?.length ?? 0) === 0 && !control.getAttribute('aria-label');
          })
          .map((element) => element.outerHTML.slice(0, 120)),
      );
      expect(unlabelled, `${path}: controls without a label`).toEqual([]);

      // Tab reaches a control, and the focused one is drawn with an outline.
      await page.locator('body').focus();
      await page.keyboard.press('Tab');
      const outline = await page.evaluate(() => {
        const focused = document.activeElement as HTMLElement | null;
        return focused && focused !== document.body ? getComputedStyle(focused).outlineStyle : 'none';
      });
      expect(outline, `${path}: focus is visible`).not.toBe('none');
    }
  });
}
