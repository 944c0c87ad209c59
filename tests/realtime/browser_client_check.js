// The browser client against a fake WebSocket and fake timers (run by test_browser_client.py).
const assert = require("assert");
const sockets = [];
class FakeWS {
  constructor(url) { this.url = url; this.sent = []; this.closed = null; sockets.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code) { this.closed = code; }
  open() { this.onopen && this.onopen(); }
  frame(obj) { this.onmessage && this.onmessage({ data: JSON.stringify(obj) }); }
  drop(code, reason = "") { this.onclose && this.onclose({ code, reason }); }
  reply(i, result) { const f = this.sent[i]; this.frame({ id: f.id, result }); }
}
global.WebSocket = FakeWS;
const timers = [];
global.setTimeout = (fn, ms) => { const t = { fn, ms, on: true }; timers.push(t); return t; };
global.clearTimeout = (t) => { if (t) t.on = false; };
global.setInterval = (fn, ms) => ({ fn, ms }); global.clearInterval = () => {};
const tick = () => { const due = timers.filter((t) => t.on); timers.length = 0; due.forEach((t) => { t.on = false; t.fn(); }); };
const flush = () => new Promise((r) => setImmediate(r));
const TenfoldRealtime = require(process.argv[2]);

(async () => {
  const states = [];
  const rt = new TenfoldRealtime("ws://x", { token: "t", onState: (s, d) => states.push([s, d.code]) });
  const got = []; let resyncs = 0;
  rt.subscribe("c", { onPublication: (p) => got.push(p.offset), onResync: () => resyncs++ });
  let ws = sockets[0]; ws.open();
  assert.deepStrictEqual(ws.sent[0].connect, { token: "t" });
  ws.reply(0, {}); await flush();
  assert.deepStrictEqual(ws.sent[1].subscribe, { channel: "c" });
  ws.frame({ push: { channel: "c", epoch: "e", pubs: [{ offset: 6, data: 1 }] } }); // early push, buffered
  ws.reply(1, { channel: "c", epoch: "e", offset: 5, recovered: false, resync: false, pubs: [] }); await flush();
  assert.deepStrictEqual(got, [6]);
  ws.frame({ push: { channel: "c", epoch: "e", pubs: [{ offset: 6, data: 1 }, { offset: 7, data: 1 }] } });
  assert.deepStrictEqual(got, [6, 7]); // duplicate dropped
  const pub = rt.publish("c", { a: 1 }); ws.frame({ id: ws.sent[2].id, error: { code: 403, message: "no" } });
  await assert.rejects(pub, (e) => e.code === 403 && e.name === "RealtimeError");
  // gap: offset 9 after 7 -> unsubscribe, then subscribe with recover from 7
  ws.frame({ push: { channel: "c", epoch: "e", pubs: [{ offset: 9, data: 1 }] } });
  assert.deepStrictEqual(ws.sent[3].unsubscribe, { channel: "c" });
  ws.reply(3, {}); await flush();
  assert.deepStrictEqual(ws.sent[4].subscribe, { channel: "c", recover: true, offset: 7, epoch: "e" });
  ws.reply(4, { channel: "c", epoch: "e", offset: 9, recovered: true, resync: false, pubs: [{ offset: 8, data: 1 }, { offset: 9, data: 1 }] }); await flush();
  assert.deepStrictEqual(got, [6, 7, 8, 9]);
  // server draining: 4000 -> reconnect soon, resubscribe with recover
  ws.drop(4000); assert.strictEqual(rt.state, "disconnected");
  assert.ok(timers[0].ms <= 500); tick();
  ws = sockets[1]; ws.open(); ws.reply(0, {}); await flush();
  assert.deepStrictEqual(ws.sent[1].subscribe, { channel: "c", recover: true, offset: 9, epoch: "e" });
  ws.reply(1, { channel: "c", epoch: "f", offset: 2, recovered: false, resync: true, pubs: [] }); await flush();
  assert.strictEqual(resyncs, 1);
  ws.frame({ push: { channel: "c", epoch: "f", pubs: [{ offset: 3, data: 1 }] } });
  assert.deepStrictEqual(got, [6, 7, 8, 9, 3]);
  // a resync push loses the position: the next publication is the baseline, and a reconnect
  // before it subscribes afresh and reports resync again
  ws.frame({ push: { channel: "c", resync: true } });
  assert.strictEqual(resyncs, 2);
  ws.frame({ push: { channel: "c", epoch: "f", pubs: [{ offset: 9, data: 1 }] } });
  assert.deepStrictEqual(got, [6, 7, 8, 9, 3, 9]);
  ws.frame({ push: { channel: "c", resync: true } });
  ws.drop(4000); tick();
  ws = sockets[2]; ws.open(); ws.reply(0, {}); await flush();
  assert.deepStrictEqual(ws.sent[1].subscribe, { channel: "c" });
  ws.reply(1, { channel: "c", epoch: "f", offset: 12, recovered: false, resync: false, pubs: [] }); await flush();
  assert.strictEqual(resyncs, 4);
  // backoff grows, capped; 1008 stops
  ws.drop(1006); assert.ok(timers[0].ms <= 500); tick(); sockets[3].drop(1006); assert.ok(timers[0].ms <= 1000);
  tick(); sockets[4].drop(1008, "origin");
  assert.strictEqual(rt.state, "closed"); assert.strictEqual(timers.filter((t) => t.on).length, 0);
  await assert.rejects(rt.publish("c", 1));
  console.log("states", JSON.stringify(states));
  console.log("OK");
})().catch((e) => { console.error(e); process.exit(1); });
