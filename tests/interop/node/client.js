#!/usr/bin/env node
// grpc-js peer for the ShareRpc interop tests: `node client.js PORT` makes one unary call
// (UnaryCall) and one bidirectional call (FullDuplexCall ping-pong) to 127.0.0.1:PORT over
// h2c and exits 0 only when both succeed with the expected content.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node client.js PORT');
  process.exit(2);
}

const def = protoLoader.loadSync('grpc/testing/test.proto', {
  includeDirs: [path.join(__dirname, '..', 'protos')],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const testing = grpc.loadPackageDefinition(def).grpc.testing;
const client = new testing.TestService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + 20000);

function fail(msg) {
  throw new Error(msg);
}

function zeros(n) {
  return Buffer.alloc(n);
}

function checkBody(payload, size, what) {
  if (!payload || !Buffer.isBuffer(payload.body)) fail(`${what}: no payload`);
  if (payload.body.length !== size) fail(`${what}: payload ${payload.body.length} bytes, expected ${size}`);
  if (payload.body.some((b) => b !== 0)) fail(`${what}: payload is not all zeros`);
}

function unary() {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    md.set('x-grpc-test-echo-initial', 'node-initial');
    let initial = null;
    const call = client.UnaryCall(
      { response_size: 1234, payload: { body: zeros(4321) } },
      md,
      { deadline: deadline() },
      (err, resp) => {
        if (err) return reject(new Error(`UnaryCall failed: ${err.code} ${err.details}`));
        try {
          checkBody(resp.payload, 1234, 'UnaryCall');
          const echoed = initial && initial.get('x-grpc-test-echo-initial');
          if (!echoed || echoed[0] !== 'node-initial') fail(`UnaryCall: initial metadata not echoed (${JSON.stringify(echoed)})`);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    call.on('metadata', (m) => { initial = m; });
  });
}

function pingPong() {
  const sizes = [[27182, 31415], [8, 9], [1828, 2653], [45904, 58979]];
  return new Promise((resolve, reject) => {
    const call = client.FullDuplexCall({ deadline: deadline() });
    let i = 0;
    let settled = false;
    const done = (err) => {
      if (settled) return;
      settled = true;
      if (err) { call.cancel(); reject(err); } else resolve();
    };
    const send = () => call.write({
      response_parameters: [{ size: sizes[i][1] }],
      payload: { body: zeros(sizes[i][0]) },
    });
    call.on('data', (resp) => {
      try {
        if (i >= sizes.length) fail(`FullDuplexCall: unexpected response #${i + 1}`);
        checkBody(resp.payload, sizes[i][1], `FullDuplexCall response ${i}`);
        i += 1;
        if (i < sizes.length) send(); else call.end();
      } catch (e) {
        done(e);
      }
    });
    call.on('error', (err) => done(new Error(`FullDuplexCall failed: ${err.code} ${err.details}`)));
    call.on('status', (st) => {
      if (st.code !== grpc.status.OK) return done(new Error(`FullDuplexCall status ${st.code} ${st.details}`));
      if (i !== sizes.length) return done(new Error(`FullDuplexCall: ${i} responses, expected ${sizes.length}`));
      done();
    });
    send();
  });
}

(async () => {
  try {
    await unary();
    console.log('PASS unary');
    await pingPong();
    console.log('PASS duplex');
    client.close();
    process.exit(0);
  } catch (e) {
    console.error(`FAIL ${e.message}`);
    client.close();
    process.exit(1);
  }
})();
