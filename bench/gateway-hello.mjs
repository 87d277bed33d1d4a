// The backend of bench/gateway.ts, as bench/peers/http-hello.js: every
// request gets 200 with a 100-byte text body (plain JavaScript, node:http).
//   node bench/gateway-hello.mjs PORT
import http from 'node:http';

const port = Number(process.argv[2]);
const BODY = Buffer.from(`${'x'.repeat(99)}\n`);
http
  .createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': BODY.length });
    res.end(BODY);
  })
  .listen(port, '127.0.0.1', () => console.log(`hello on 127.0.0.1:${port} pid ${process.pid}`));
process.on('SIGTERM', () => process.exit(0));
