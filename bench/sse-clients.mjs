// SSE load client for bench/sse-load.sh: signs N clients in, one session each, the way staff do
// (the sign-in form, with the panel's Origin), opens one live-feed subscription per session,
// keeps them for SECONDS, counts the events received and the gaps between them as each client
// saw them, then closes everything and prints one JSON line. It fails (non-zero exit, the reason
// on stderr) when a sign-in fails, a subscription is refused or closes early, or no events
// arrive: a run that measured nothing prints no figure.
//   CTGUARD_BENCH_USER=... CTGUARD_BENCH_PASSWORD=... node bench/sse-clients.mjs N SECONDS URL
// Optional: CTGUARD_BENCH_PIDS="server=PID,helper=PID" reports each process's user and system
// CPU and memory over the window; CTGUARD_BENCH_SUSPECTS_EVERY=S makes one more session ask for
// the Suspicious page's data (POST /api/suspects, a walk of the table) every S seconds, as an
// open page does, and fails on any answer but 200.
import fs from 'node:fs';
import http from 'node:http';

const [n, seconds, url] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
if (!(n >= 1 && n <= 1000) || !(seconds >= 1 && seconds <= 600) || !url?.startsWith('http://127.')) {
  console.error('usage: sse-clients.mjs N(1..1000) SECONDS(1..600) http://127.x.x.x:PORT/api/live');
  process.exit(2);
}
const user = process.env.CTGUARD_BENCH_USER;
const password = process.env.CTGUARD_BENCH_PASSWORD;
if (!user || !password) {
  console.error('sse-clients.mjs: CTGUARD_BENCH_USER and CTGUARD_BENCH_PASSWORD must name an account');
  process.exit(2);
}
const origin = new URL(url).origin;
// The server whose cost is measured over the subscription window only (not the sign-ins, whose
// argon2 hashes are a cost of signing in, reported apart as sign_in_seconds).
const serverPid = Number(process.env.CTGUARD_BENCH_SERVER_PID);
/** The server's CPU time (user + system, clock ticks) and RSS (KiB) from /proc. */
function serverUsage() {
  if (!serverPid) return null;
  const stat = fs.readFileSync(`/proc/${serverPid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rss = fs.readFileSync(`/proc/${serverPid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
  // fields[0] is the state (field 3 of stat): utime and stime are fields 14 and 15.
  return { cpu_ticks: Number(fields[11]) + Number(fields[12]), rss_kib: rss ? Number(rss[1]) : 0 };
}
/** Each named process's CPU (user, system: clock ticks) and memory (KiB) from /proc. */
const watched = (process.env.CTGUARD_BENCH_PIDS ?? '')
  .split(',')
  .filter(Boolean)
  .map((pair) => pair.split('='))
  .map(([name, pid]) => ({ name, pid: Number(pid) }));
function usageOf(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return { user: Number(fields[11]), system: Number(fields[12]), rss_kib: kib('VmRSS'), hwm_kib: kib('VmHWM') };
}
const usages = () => Object.fromEntries(watched.map(({ name, pid }) => [name, usageOf(pid)]));
const suspectsEvery = Number(process.env.CTGUARD_BENCH_SUSPECTS_EVERY ?? 0);
const fail = (why) => {
  console.error(`sse-clients.mjs: FAILED: ${why}`);
  process.exit(1);
};

/** Signs in once; resolves to the Cookie header of the new session. */
function signIn() {
  const body = new URLSearchParams({ username: user, password, next: '/' }).toString();
  return new Promise((resolve, reject) => {
    const request = http.request(`${origin}/auth/login`, {
      method: 'POST',
      headers: {
        Origin: origin,
        'Content-Type': 'application/x-www-form-urlencoded',
        'Content-Length': Buffer.byteLength(body),
      },
    }, (response) => {
      response.resume();
      const location = response.headers.location ?? '';
      const cookies = (response.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]);
      if (response.statusCode >= 300 && response.statusCode < 400 && !location.startsWith('/login') && cookies.length) {
        resolve(cookies.join('; '));
      } else {
        reject(new Error(`sign-in answered ${response.statusCode} → ${location || 'no redirect'}`));
      }
    });
    request.on('error', reject);
    request.setTimeout(30_000, () => request.destroy(new Error('sign-in timed out')));
    request.end(body);
  });
}

// Sign-ins a few at a time: each costs an argon2 hash, which the server bounds.
const sessions = [];
const signInStarted = Date.now();
const wanted = n + (suspectsEvery > 0 ? 1 : 0);
for (let i = 0; i < wanted; i += 4) {
  const batch = Array.from({ length: Math.min(4, wanted - i) }, () => signIn());
  try {
    sessions.push(...(await Promise.all(batch)));
  } catch (error) {
    fail(`${error.message} (after ${sessions.length} of ${n} sign-ins)`);
  }
}
const signInSeconds = (Date.now() - signInStarted) / 1000;

const refresher = suspectsEvery > 0 ? sessions.pop() : null;
const usageBefore = serverUsage();
const usagesBefore = usages();
const windowStarted = Date.now();
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const requests = [];
let open = 0;
let closedEarly = 0;
let events = 0;
// Milliseconds between one client's consecutive events (the first counts from the window's start).
const gaps = [];
let errors = 0;
let finishing = false;
const refusals = new Map();
for (const cookie of sessions) {
  const request = http.get(url, { agent, headers: { Cookie: cookie } }, (response) => {
    if (response.statusCode !== 200) {
      errors++;
      refusals.set(response.statusCode, (refusals.get(response.statusCode) ?? 0) + 1);
      response.resume();
      return;
    }
    open++;
    response.setEncoding('utf8');
    let buffer = '';
    let last = windowStarted;
    response.on('data', (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        if (buffer.slice(0, end).includes('data:')) {
          events++;
          const now = Date.now();
          gaps.push(now - last);
          last = now;
        }
        buffer = buffer.slice(end + 2);
      }
    });
    response.on('end', () => {
      if (!finishing) closedEarly++;
    });
  });
  request.on('error', () => {
    if (!finishing) errors++;
  });
  requests.push(request);
}

// The Suspicious page's refreshes: one walk-backed request every suspectsEvery seconds.
const refreshes = { asked: 0, answered: 0, refused: {}, walk_ms: [], round_trip_ms: [] };
function refreshSuspects() {
  const started = Date.now();
  refreshes.asked++;
  const request = http.request(`${origin}/api/suspects`, {
    method: 'POST',
    agent,
    headers: { Cookie: refresher, Origin: origin, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': 0 },
  }, (response) => {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk) => { body += chunk; });
    response.on('end', () => {
      if (response.statusCode !== 200) {
        refreshes.refused[response.statusCode] = (refreshes.refused[response.statusCode] ?? 0) + 1;
        return;
      }
      refreshes.answered++;
      refreshes.round_trip_ms.push(Date.now() - started);
      const walk = body.match(/"walk_ms":(\d+)/);
      if (walk) refreshes.walk_ms.push(Number(walk[1]));
    });
  });
  request.on('error', () => {
    if (!finishing) refreshes.refused.error = (refreshes.refused.error ?? 0) + 1;
  });
  request.end();
}
if (refresher) {
  refreshSuspects();
  setInterval(refreshSuspects, suspectsEvery * 1000).unref();
}

const percentile = (values, p) => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

setTimeout(() => {
  finishing = true;
  const usageAfter = serverUsage();
  const usagesAfter = usages();
  for (const request of requests) request.destroy();
  const report = { clients: n, open, events, errors, closed_early: closedEarly, seconds, sign_in_seconds: signInSeconds };
  if (usageBefore && usageAfter) {
    report.server_cpu_ticks = usageAfter.cpu_ticks - usageBefore.cpu_ticks;
    report.server_rss_kib = usageAfter.rss_kib;
  }
  report.gap_ms = { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: percentile(gaps, 100) };
  for (const { name } of watched) {
    const [before, after] = [usagesBefore[name], usagesAfter[name]];
    report[name] = {
      user_ticks: after.user - before.user,
      system_ticks: after.system - before.system,
      rss_kib: after.rss_kib,
      hwm_kib: after.hwm_kib,
    };
  }
  if (refresher) {
    report.suspects = {
      asked: refreshes.asked,
      answered: refreshes.answered,
      walk_ms_total: refreshes.walk_ms.reduce((a, b) => a + b, 0),
      walk_ms_max: percentile(refreshes.walk_ms, 100),
      round_trip_ms_max: percentile(refreshes.round_trip_ms, 100),
      // Last: bench/under-attack.sh reads the fields before it with a flat pattern.
      refused: refreshes.refused,
    };
    if (Object.keys(refreshes.refused).length > 0) fail(`Suspicious page refreshes refused: ${JSON.stringify(report)}`);
    if (refreshes.answered === 0) fail(`no Suspicious page refresh was answered: ${JSON.stringify(report)}`);
  }
  if (errors > 0) fail(`${errors} subscriptions refused or failed (${JSON.stringify(Object.fromEntries(refusals))}): ${JSON.stringify(report)}`);
  if (open < n) fail(`only ${open} of ${n} subscriptions opened: ${JSON.stringify(report)}`);
  if (closedEarly > 0) fail(`${closedEarly} subscriptions closed before the end: ${JSON.stringify(report)}`);
  if (events === 0) fail(`no events arrived: ${JSON.stringify(report)}`);
  console.log(JSON.stringify(report));
  process.exit(0);
}, seconds * 1000);
