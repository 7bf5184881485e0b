#!/usr/bin/env node
// grpc-js peer of the ShareRpc conformance tests: `node contract_client.js 127.0.0.1:PORT` loads
// protos/sharerpc/v1/share_rpc.proto with proto-loader (no generated code), then over h2c:
// CreateShare, RedeemShare, and an AppendOps duplex stream (two batches written at once, one ack
// each, in order, every op APPLIED). Prints "PASS ..." lines and "ALL PASS"; exits 1 on the first
// broken expectation.
'use strict';
const crypto = require('crypto');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const target = process.argv[2];
if (!target) {
  console.error('usage: node contract_client.js HOST:PORT');
  process.exit(2);
}

const def = protoLoader.loadSync('sharerpc/v1/share_rpc.proto', {
  includeDirs: [path.join(__dirname, '..', '..', '..', 'protos')],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
});
const v1 = grpc.loadPackageDefinition(def).sharerpc.v1;
const client = new v1.ShareRpc(target, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + 20000);

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function unary(method, request, metadata = new grpc.Metadata()) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: deadline() }, (err, resp) =>
      err ? reject(new Error(`${method}: ${grpc.status[err.code]} ${err.details}`)) : resolve(resp));
  });
}

function batch(producer, n, firstSeq) {
  const ops = [1, 2].map((i) => ({
    op_id: crypto.randomUUID(),
    seq: firstSeq + i - 1,
    append: { collection: 'log', value: Buffer.from(`node ${n}.${i}`), content_type: 'text/plain' },
  }));
  return { batch_id: `${producer}-b${n}`, producer_id: producer, ops };
}

// Both batches are written before any ack is read; the acks must come back in order.
function appendOps(liveRef) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${liveRef}`);
  const producer = `node-${crypto.randomUUID()}`;
  const batches = [batch(producer, 1, 1), batch(producer, 2, 3)];
  return new Promise((resolve, reject) => {
    const acks = [];
    const call = client.AppendOps(md, { deadline: deadline() });
    call.on('data', (ack) => acks.push(ack));
    call.on('error', (err) => reject(new Error(`AppendOps: ${grpc.status[err.code]} ${err.details}`)));
    // 'status' comes after the last message; 'end' could also follow a failed call.
    call.on('status', (st) => st.code === grpc.status.OK && resolve({ batches, acks }));
    batches.forEach((b) => call.write(b));
    call.end();
  });
}

function checkAcks({ batches, acks }) {
  check(acks.length === batches.length, `AppendOps: ${acks.length} acks for ${batches.length} batches`);
  let cursor = 0;
  batches.forEach((b, k) => {
    const ack = acks[k];
    check(ack.batch_id === b.batch_id, `ack ${k}: batch ${ack.batch_id}, expected ${b.batch_id}`);
    check(ack.batch_status === 'BATCH_STATUS_ACCEPTED', `ack ${k}: ${ack.batch_status}`);
    b.ops.forEach((op, i) => {
      cursor += 1;
      const a = ack.acks[i];
      check(a && a.op_id === op.op_id, `ack ${k}: op ${i} missing or out of order`);
      check(a.status === 'OP_STATUS_APPLIED' && a.cursor === cursor, `ack ${k}: op ${i} ${a.status} at ${a.cursor}, expected APPLIED at ${cursor}`);
    });
    check(ack.cursor === cursor, `ack ${k}: batch cursor ${ack.cursor}, expected ${cursor}`);
  });
}

async function main() {
  const created = await unary('CreateShare', { share_key: `node-${crypto.randomUUID()}`, owner_secret: crypto.randomBytes(32) });
  check(created.created && created.sturdy_ref.length > 0, `CreateShare: ${JSON.stringify(created)}`);
  console.log(`PASS CreateShare: ${created.share_id}`);
  const live = await unary('RedeemShare', { sturdy_ref: created.sturdy_ref });
  check(live.live_ref.length > 0 && live.rights.includes('RIGHT_APPEND'), `RedeemShare: ${JSON.stringify(live)}`);
  console.log(`PASS RedeemShare: epoch ${live.epoch}, rights ${live.rights.join(',')}`);
  checkAcks(await appendOps(live.live_ref));
  console.log('PASS AppendOps: 2 batches, 2 acks in order, 4 ops APPLIED at cursors 1-4');
  console.log('ALL PASS');
}

main().then(
  () => { client.close(); process.exit(0); },
  (e) => { console.log(`FAIL ${e.message}`); client.close(); process.exit(1); });
