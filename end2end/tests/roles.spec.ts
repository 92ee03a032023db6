// Signing in as each role: each sees only what its role may use, and the server refuses the rest
// even when asked directly.
import { test, expect, signIn, account } from './support';

test('a wrong password is refused with a plain message and no hint', async ({ page }) => {
  await page.goto('/');
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel('Username').fill(account('viewer'));
  await page.getByLabel('Password').fill('definitely not it');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toHaveText('Wrong username or password.');
});

test('a viewer sees the dashboard but no Users page, and a direct visit is refused', async ({ page }) => {
  await signIn(page, 'viewer');
  await expect(page.getByTestId('count')).toBeVisible();
  await expect(page.getByRole('link', { name: 'Users' })).toHaveCount(0);
  // Asked directly, with the viewer's own session cookie, the server refuses.
  const response = await page.request.get('/users', { headers: { accept: 'text/html' } });
  expect(response.status()).toBe(403);
  const forged = await page.request.post('/auth/login', { headers: { origin: 'http://evil.example' } });
  expect(forged.status()).toBe(403);
});

test('an operator sees no Users page either', async ({ page }) => {
  await signIn(page, 'operator');
  await expect(page.getByRole('link', { name: 'Users' })).toHaveCount(0);
  const response = await page.request.get('/users', { headers: { accept: 'text/html' } });
  expect(response.status()).toBe(403);
});

test('an admin adds and disables a user through the server\'s confirmation; cancel changes nothing', async ({ page }) => {
  await signIn(page, 'admin');
  await page.getByRole('link', { name: 'Users' }).click();
  await expect(page).toHaveURL(/\/users$/);
  await expect(page.getByTestId('accounts')).toContainText(account('admin'));

  const name = `temp-${Date.now() % 100000}`;
  await page.getByLabel('Username').fill(name);
  await page.getByLabel('Password (12+ characters)').fill('a temporary password');
  await page.getByLabel('Role', { exact: true }).selectOption('viewer');
  await page.getByRole('button', { name: 'Add user…' }).click();
  const dialog = page.getByTestId('confirm-dialog');
  await expect(dialog).toContainText(`Add ${name}`);
  await expect(dialog).toContainText(`new account ${name} with role viewer`);
  await page.keyboard.press('Enter'); // Confirm has the focus
  const row = page.getByTestId(`user-${name}`);
  await expect(row).toContainText('active');

  // Cancel (Escape) changes nothing.
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(dialog).toContainText('state: active → disabled');
  await page.keyboard.press('Escape');
  await expect(dialog).toHaveCount(0);
  await page.reload();
  await expect(page.getByTestId(`user-${name}`)).toContainText('active');

  await page.getByTestId(`user-${name}`).getByRole('button', { name: 'Disable' }).click();
  await expect(dialog).toContainText(`Disable ${name}`);
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId(`user-${name}`)).toContainText('disabled');
});

test('signing out ends the session', async ({ page }) => {
  await signIn(page, 'viewer');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1/);
  await page.goto('/');
  await expect(page).toHaveURL(/\/login/);
});
