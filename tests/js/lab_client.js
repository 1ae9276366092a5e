// Drives the lab's agent server with Node's `ws` client (Debian's node-ws):
// create an agent, send one message, print every frame received as one JSON line,
// and exit once the turn's agent_response_end has arrived.
// Usage: NODE_PATH=/usr/share/nodejs node lab_client.js ws://127.0.0.1:PORT/ "message"
'use strict';

const WebSocket = require('ws');

const [url, message] = process.argv.slice(2);
const ws = new WebSocket(url);
let agentId = null;

// As a MemGPT 0.2 client does: the server sends nothing until the client speaks.
ws.on('open', () => {
  ws.send(JSON.stringify({ type: 'command', command: 'create_agent', config: { name: 'node' } }));
});

ws.on('message', (data, isBinary) => {
  const text = isBinary ? data.toString('hex') : data.toString('utf8');
  process.stdout.write(text + '\n');
  const frame = JSON.parse(text);
  if (frame.type === 'command_response' && agentId === null) {
    agentId = frame.agent_id;
    ws.send(JSON.stringify({ type: 'user_message', message, agent_id: agentId, request_id: 'node-1' }));
  } else if (frame.type === 'agent_response_end') {
    ws.close(1000, 'done');
  }
});

ws.on('close', (code, reason) => {
  process.stderr.write(`closed ${code} ${reason}\n`);
  process.exit(code === 1000 ? 0 : 1);
});

ws.on('error', (err) => {
  process.stderr.write(`error ${err.message}\n`);
  process.exit(2);
});
