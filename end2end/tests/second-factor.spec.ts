// A second factor, as a person sets one up and uses it: enrolment on the account page (the QR code,
// the key, a first code to confirm it, the recovery codes shown once), then signing in with the
// password and a code from the "app" (computed here from the key with node's HMAC, as RFC 6238
// says), by keyboard. Its own account, so the suite's shared ones keep signing in with a password.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test, expect, visit, artifactsDir } from './support';

const repo = path.resolve(__dirname, '../..');
const STEP_MS = 30_000;

/** The six-digit code an authenticator app shows for a base32 key at `at` (RFC 6238, SHA-1). */
function totp(key: string, at = Date.now()): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bits = [...key.replace(/=+$/, '').toUpperCase()]
    .map((c) => alphabet.indexOf(c).toString(2).padStart(5, '0'))
    .join('');
  const secret = Buffer.from((bits.match(/.{8}/g) ?? []).map((byte) => parseInt(byte, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / STEP_MS)));
  const mac = crypto.createHmac('sha1', secret).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, '0');
}

/** Waits for the next 30 s step: a step's code is accepted once, and enrolment spent one. */
async function nextStep() {
  await new Promise((resolve) => setTimeout(resolve, STEP_MS - (Date.now() % STEP_MS) + 500));
}

// The wrong first code is refused with a 400, which the browser logs.
test.use({ expectedConsoleErrors: [/status of 400 \(Bad Request\) \(.*\/api\/confirm_second_factor\)/] });

test('a user enrols a second factor with its QR code and signs in with password and code', async ({ page }) => {
  test.setTimeout(120_000);
  const name = `e2e-2fa-${Date.now() % 100000}`;
  const password = crypto.randomBytes(18).toString('base64url');
  execFileSync('bash', [path.join(repo, 'scripts/services.sh'), 'user', 'add', name, '--role', 'operator', '--password-stdin'], {
    input: `${password}\n`,
    env: process.env,
    stdio: ['pipe', 'ignore', 'pipe'],
  });

  const signInWithPassword = async () => {
    await page.goto('/login');
    await page.getByLabel('Username').fill(name);
    await page.getByLabel('Password').fill(password);
    await page.getByLabel('Password').press('Enter');
  };

  // Without a second factor, the password is enough.
  await signInWithPassword();
  await expect(page).toHaveURL(/\/$/);
  await page.getByRole('link', { name: 'Your account' }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(page.getByTestId('second-factor-state')).toContainText('No second factor yet');
  await expect(page.getByTestId('own-sessions')).toContainText('this browser');

  await page.getByRole('button', { name: 'Set up a second factor' }).click();
  await expect(page.getByTestId('enrolment-qr').locator('svg')).toBeVisible();
  const key = (await page.getByTestId('enrolment-secret').textContent())?.trim() ?? '';
  expect(key).toMatch(/^[A-Z2-7]{32}$/);

  // A wrong first code confirms nothing.
  const right = totp(key);
  const wrong = right === '000000' ? '111111' : '000000';
  await page.getByLabel('Code from the app').fill(wrong);
  await page.getByLabel('Code from the app').press('Enter');
  await expect(page.getByTestId('second-factor-error')).toContainText('not right');

  await page.getByLabel('Code from the app').fill(totp(key));
  await page.getByLabel('Code from the app').press('Enter');
  await expect(page.getByTestId('second-factor-enrolled')).toBeVisible();
  await expect(page.getByTestId('recovery-codes').locator('li')).toHaveCount(10);
  await page.screenshot({ path: path.join(artifactsDir(), 'second-factor-recovery-codes.png') });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1$/);

  // Now the password leads to the code form, and a wrong code is refused plainly.
  await signInWithPassword();
  await expect(page).toHaveURL(/\/login\?step=code$/);
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
  await page.getByLabel('Code').fill(wrong);
  await page.getByLabel('Code').press('Enter');
  await expect(page.getByTestId('login-error')).toHaveText('Wrong or already used code.');

  await nextStep();
  await page.getByLabel('Code').fill(totp(key));
  await page.getByLabel('Code').press('Enter');
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator('main[data-hydrated="true"]')).toBeVisible();
  await expect(page.getByTestId('who')).toHaveAttribute('data-role', 'operator');

  await visit(page, '/account');
  await expect(page.getByTestId('second-factor-state')).toContainText('A second factor is in force. 10 recovery codes left.');
});
