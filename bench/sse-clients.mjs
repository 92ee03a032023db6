// SSE load client for bench/sse-load.sh: opens N concurrent subscriptions to the live feed, keeps
// them for SECONDS, counts the events received, then closes everything and prints one JSON line.
//   node bench/sse-clients.mjs N SECONDS URL
import http from 'node:http';

const [n, seconds, url] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
if (!(n >= 1 && n <= 1000) || !(seconds >= 1 && seconds <= 600) || !url?.startsWith('http://127.')) {
  console.error('usage: sse-clients.mjs N(1..1000) SECONDS(1..600) http://127.x.x.x:PORT/api/live');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const requests = [];
let open = 0;
let events = 0;
let errors = 0;
for (let i = 0; i < n; i++) {
  const request = http.get(url, { agent }, (response) => {
    if (response.statusCode !== 200) {
      errors++;
      response.resume();
      return;
    }
    open++;
    response.setEncoding('utf8');
    let buffer = '';
    response.on('data', (chunk) => {
      buffer += chunk;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        if (buffer.slice(0, end).includes('data:')) events++;
        buffer = buffer.slice(end + 2);
      }
    });
  });
  request.on('error', () => errors++);
  requests.push(request);
}

setTimeout(() => {
  for (const request of requests) request.destroy();
  console.log(JSON.stringify({ clients: n, open, events, errors, seconds }));
  process.exit(0);
}, seconds * 1000);
