// A WebSocket server nobody here wrote: Node's `ws` (Debian's node-ws), for the proxy tests.
// Usage: NODE_PATH=/usr/share/nodejs node ws_server.js MODE
//   plain    echoes; "hello?" is answered with what the handshake carried (JSON);
//            "ping-me" makes the server ping the client with payload "srv";
//            sets a cookie on the 101 response
//   graphql  speaks enough of graphql-transport-ws: it selects that subprotocol when
//            offered, closes with 4406 when it was not (as graphql-ws servers do),
//            answers connection_init with connection_ack carrying what the handshake carried
//   refuse   refuses any handshake without "Authorization: Bearer good" with 401 and a
//            WWW-Authenticate header; then behaves as plain
// Prints "listening PORT" once it accepts connections; exits when stdin closes.
'use strict';

const WebSocket = require('ws');

const mode = process.argv[2] || 'plain';
const options = { host: '127.0.0.1', port: 0 };
if (mode === 'graphql') {
  options.handleProtocols = (protocols) =>
    protocols.has('graphql-transport-ws') ? 'graphql-transport-ws' : false;
}
if (mode === 'refuse') {
  options.verifyClient = (info, done) => {
    if (info.req.headers.authorization === 'Bearer good') return done(true);
    done(false, 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer realm="lab"' });
  };
}
const server = new WebSocket.Server(options);

server.on('headers', (headers) => {
  if (mode !== 'graphql') headers.push('Set-Cookie: session=s3cr3t; Path=/');
});

function handshake(ws, req) {
  return {
    protocol: ws.protocol,
    authorization: req.headers.authorization || null,
    cookie: req.headers.cookie || null,
    origin: req.headers.origin || null,
    api_key: req.headers['x-api-key'] || null,
    url: req.url,
  };
}

server.on('connection', (ws, req) => {
  if (mode === 'graphql') {
    if (ws.protocol !== 'graphql-transport-ws') {
      ws.close(4406, 'Subprotocol not acceptable');
      return;
    }
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString('utf8'));
      if (message.type === 'connection_init') {
        ws.send(JSON.stringify({ type: 'connection_ack', payload: handshake(ws, req) }));
      } else if (message.type === 'subscribe') {
        ws.send(JSON.stringify({ type: 'next', id: message.id, payload: { data: { echo: message.payload.query } } }));
        ws.send(JSON.stringify({ type: 'complete', id: message.id }));
      } else if (message.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      }
    });
    return;
  }
  ws.on('ping', (data) => ws.send('server got ping ' + data.toString('utf8')));
  ws.on('pong', (data) => ws.send('server got pong ' + data.toString('utf8')));
  ws.on('message', (data, isBinary) => {
    const text = data.toString('utf8');
    if (!isBinary && text === 'hello?') ws.send(JSON.stringify(handshake(ws, req)));
    else if (!isBinary && text === 'ping-me') ws.ping('srv');
    else ws.send(data, { binary: isBinary });
  });
});

server.on('listening', () => process.stdout.write('listening ' + server.address().port + '\n'));
process.stdin.on('end', () => {
  for (const client of server.clients) client.terminate();
  process.exit(0);
});
process.stdin.resume();
