// A paced UDP sender for the benchmark, run inside a lab pod (`lab exec POD -- node ...`):
// `pps` datagrams per second to ADDR:PORT for `seconds`, in 10 ms slices.
//
//   node bench/udp-load.mjs 10.200.2.10 9000 1250 30

import { createSocket } from 'node:dgram';

const [addr, port, pps, seconds] = process.argv.slice(2);
if (!addr || !port) {
  console.error('usage: node udp-load.mjs ADDR PORT [PPS=1250] [SECONDS=30]');
  process.exit(2);
}
const rate = Number(pps ?? 1250);
const end = Date.now() + Number(seconds ?? 30) * 1000;
const sock = createSocket(addr.includes(':') ? 'udp6' : 'udp4');
sock.on('message', () => {}); // the pod echoes: read replies so the socket buffer never fills
const payload = Buffer.from('vigil-bench');
const start = Date.now();
let sent = 0;
const timer = setInterval(() => {
  const now = Date.now();
  if (now >= end) {
    clearInterval(timer);
    setTimeout(() => {
      console.log(`sent ${sent} datagrams in ${((now - start) / 1000).toFixed(1)} s`);
      sock.close();
    }, 200);
    return;
  }
  const due = Math.floor(((now - start) / 1000) * rate);
  // Catch up at most one second's worth, so a stall does not become a burst.
  for (let n = Math.min(due - sent, rate); n > 0; n--, sent++) sock.send(payload, Number(port), addr);
}, 10);
