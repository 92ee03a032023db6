// The sandbox's other attacks, each recognised on the Suspicious sources page with the reason in
// words, and the seed's own fix: DNS answers reflected from source port 53, blocked as exactly
// that (udp from the reflector, source port 53), which the kernel's set then holds.
import { test, expect, sandbox, signIn, visit, inHost, entriesFrom } from './support';

const REFLECTOR = '203.0.113.53';
const SCANNER = '203.0.113.88';
const GUEST = '198.51.100.23';

test.describe.configure({ mode: 'serial' });

test.beforeAll(() => {
  sandbox('scenario', 'dns-reflection', '3000');
  sandbox('scenario', 'scan', '3000');
  sandbox('scenario', 'compromised-guest', '2000');
});

test('each attack is listed with the reason it looks suspicious', async ({ page }) => {
  await signIn(page, 'viewer');
  await page.getByRole('link', { name: 'Suspicious sources' }).click();
  await expect(page.getByTestId(`suspect-${REFLECTOR}`)).toContainText(
    'UDP from source port 53 to many ports: DNS reflection',
  );
  const scanner = page.getByTestId(`suspect-${SCANNER}`);
  await expect(scanner).toContainText('half-open TCP: SYN flood or port scan');
  await expect(scanner).toContainText(/to (about |over )?\d+ destination ports: a scan/);
  await expect(page.getByTestId(`suspect-${GUEST}`)).toContainText(
    /an internal address \(behind this host's NAT\) opening connections to (about )?\d+ destinations, mostly unanswered: compromised guest/,
  );
});

test('an operator blocks the reflection as the seed did: udp from the reflector, source port 53', async ({
  page,
}) => {
  expect(entriesFrom(REFLECTOR)).toBeGreaterThanOrEqual(3000);
  await signIn(page, 'operator');
  await page.getByRole('link', { name: 'Suspicious sources' }).click();
  await page.getByTestId(`suspect-${REFLECTOR}`).getByRole('button', { name: 'Block…' }).click();
  const form = page.getByTestId('block-form');
  // Prefilled with only the reflected traffic; the fields say the same as the target line.
  await expect(form.getByTestId('block-target-text')).toHaveText(`udp from ${REFLECTOR} sport 53`);
  await expect(form.getByLabel('Protocol')).toHaveValue('udp');
  await expect(form.getByLabel('Port', { exact: true })).toHaveValue('sport');
  await expect(form.getByLabel('Port number')).toHaveValue('53');
  // The block also drops that server's legitimate answers, and says so.
  await expect(page.getByTestId('block-note')).toContainText("also that server's legitimate DNS answers");
  await form.getByLabel('Duration').selectOption({ label: '10 minutes' });
  await form.getByRole('button', { name: 'Block…' }).click();
  const dialog = page.getByTestId('confirm-dialog');
  await expect(dialog).toContainText(`Block udp from ${REFLECTOR} sport 53`);
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('operation-done')).toContainText(`Blocked udp from ${REFLECTOR} sport 53`);

  const set = inHost('nft', 'list', 'set', 'inet', 'ctguard', 'v4_saddr_proto_sport');
  expect(set).toContain(`${REFLECTOR} . udp . 53`);
  expect(entriesFrom(REFLECTOR)).toBe(0);
  // More reflected answers are dropped before conntrack sees them.
  sandbox('scenario', 'dns-reflection', '500');
  expect(entriesFrom(REFLECTOR)).toBe(0);
});

test('an operator extends the reflection block from the Blocks page; the kernel renews it', async ({ page }) => {
  const target = `udp from ${REFLECTOR} sport 53`;
  const kernelTimeout = () => {
    const set = JSON.parse(inHost('nft', '-j', 'list', 'set', 'inet', 'ctguard', 'v4_saddr_proto_sport'));
    const elements: unknown[] = set.nftables.find((item: { set?: unknown }) => item.set).set.elem ?? [];
    const element = elements.find((e) => JSON.stringify(e).includes(REFLECTOR)) as
      | { elem: { timeout: number } }
      | undefined;
    return element?.elem.timeout;
  };
  expect(kernelTimeout(), 'the 10-minute block of the previous test').toBeLessThanOrEqual(600);

  await signIn(page, 'operator');
  await visit(page, '/blocks');
  const row = page.getByTestId(`block-${target}`);
  await expect(row.getByTestId('countdown')).toContainText(/in \d+:\d\d$/);
  await row.getByLabel(`Extend ${target} for`).selectOption({ label: 'for 1 day' });
  await row.getByRole('button', { name: 'Extend…' }).click();
  const dialog = page.getByTestId('confirm-dialog');
  await expect(dialog).toContainText('the block is renewed');
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByTestId('operation-done')).toContainText(`Blocked ${target}`);

  await expect(row.getByTestId('countdown')).toContainText(/in (1 d 00|23):\d\d:\d\d/);
  expect(kernelTimeout(), 'the set element now runs for a day').toBeGreaterThan(86_000);
  expect(entriesFrom(REFLECTOR)).toBe(0);
});

test('the block form explains a port without a protocol before asking the server', async ({ page }) => {
  await signIn(page, 'operator');
  await visit(page, '/blocks');
  const form = page.getByTestId('block-form');
  await form.getByLabel('Address or network').fill(SCANNER);
  await form.getByLabel('Port', { exact: true }).selectOption('dport');
  await form.getByLabel('Port number').fill('22');
  await form.getByLabel('Reason').fill('scanner');
  await form.getByRole('button', { name: 'Block…' }).click();
  await expect(form.getByRole('alert')).toContainText('A port needs a protocol');
  await expect(page.getByTestId('confirm-dialog')).toHaveCount(0);
  await form.getByLabel('Protocol').selectOption('tcp');
  await expect(form.getByTestId('block-target-text')).toHaveText(`tcp from ${SCANNER} dport 22`);
});
