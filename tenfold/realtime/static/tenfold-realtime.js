/*
 * tenfold-realtime.js: the browser client of tenfold's realtime WebSocket protocol (v1).
 * Plain ES2017, no dependencies, no build step: <script src=".../tenfold-realtime.js"></script>
 * exposes window.TenfoldRealtime.
 *
 *   const rt = new TenfoldRealtime("wss://example.com/realtime", {token, onState});
 *   const sub = rt.subscribe("tournament:42", {onPublication, onResync, onError, since});
 *   await rt.publish("chat:42", {text: "hi"});  await rt.presence("tournament:42");
 *   sub.unsubscribe();  rt.close();
 *
 * After a reconnect every subscription is renewed with the last (offset, epoch) it saw, so the
 * server sends exactly the missed publications, or tells it to resync (onResync: reload state).
 */
(function (root) {
  "use strict";

  const PING_EVERY = 25000; // ms between client pings
  const PONG_WITHIN = 10000; // a ping unanswered this long means the connection is dead
  const BACKOFF_MIN = 500;
  const BACKOFF_MAX = 20000;

  class RealtimeError extends Error {
    constructor(code, message) {
      super(message);
      this.name = "RealtimeError";
      this.code = code;
    }
  }

  function call(handler, ...args) {
    // A page's handler that throws must not break the client's bookkeeping.
    if (!handler) return;
    try {
      handler(...args);
    } catch (err) {
      setTimeout(() => { throw err; });
    }
  }

  class Subscription {
    constructor(client, channel, handlers) {
      this._client = client;
      this.channel = channel;
      this.handlers = handlers;
      this.offset = null; // last offset delivered (null: none yet, or unknown after a resync)
      this.epoch = null;
      this.ready = false; // false while a subscribe is in flight: pushes wait in `early`
      this.early = [];
    }

    unsubscribe() {
      return this._client._unsubscribe(this);
    }
  }

  class TenfoldRealtime {
    constructor(url, options = {}) {
      this.url = url;
      this.token = options.token || null;
      this.onState = options.onState || null;
      this.state = "disconnected";
      this._ws = null;
      this._nextId = 1;
      this._pending = new Map(); // request id -> {resolve, reject}
      this._queue = []; // requests made while not connected, sent once connected
      this._subs = new Map(); // channel -> Subscription
      this._attempt = 0;
      this._timer = null;
      this._pingTimer = null;
      this._closed = false;
      this._open();
    }

    subscribe(channel, handlers = {}) {
      if (this._subs.has(channel)) throw new Error(`already subscribed to ${channel}`);
      const sub = new Subscription(this, channel, handlers);
      if (handlers.since) {
        // A position saved earlier (say in sessionStorage) resumes across page loads.
        sub.offset = handlers.since.offset;
        sub.epoch = handlers.since.epoch;
      }
      this._subs.set(channel, sub);
      if (this.state === "connected") this._subscribe(sub);
      return sub;
    }

    publish(channel, data) {
      return this._request("publish", { channel, data });
    }

    presence(channel) {
      return this._request("presence", { channel });
    }

    presenceCount(channel) {
      return this._request("presence_count", { channel });
    }

    close() {
      this._closed = true;
      clearTimeout(this._timer);
      if (this._ws) return this._lost(this._ws, 1000, "closed by the client");
      this._rejectQueue(new Error("the client is closed"));
      this._setState("closed", { code: 1000, reason: "closed by the client" });
    }

    // -- connection ------------------------------------------------------------------------

    _setState(state, detail) {
      this.state = state;
      call(this.onState, state, detail || {});
    }

    _open() {
      this._setState("connecting");
      const ws = new WebSocket(this.url);
      this._ws = ws;
      ws.onopen = () => this._handshake(ws);
      ws.onmessage = (event) => this._onFrame(ws, event.data);
      ws.onclose = (event) => this._lost(ws, event.code, event.reason);
      // onerror is always followed by onclose, which does the work.
    }

    async _handshake(ws) {
      if (this.token) {
        try {
          await this._call(ws, "connect", { token: this.token });
        } catch (err) {
          if (err instanceof RealtimeError) this._fail(ws, err);
          return; // otherwise the socket closed: onclose reconnects
        }
      }
      if (ws !== this._ws) return;
      this._attempt = 0;
      this._setState("connected");
      this._startPings(ws);
      for (const sub of this._subs.values()) this._subscribe(sub);
      const queued = this._queue;
      this._queue = [];
      for (const q of queued) this._call(ws, q.method, q.params).then(q.resolve, q.reject);
    }

    _rejectQueue(err) {
      for (const q of this._queue) q.reject(err);
      this._queue = [];
    }

    _fail(ws, err) {
      // The server refused the token: retrying with the same one would loop forever.
      this._closed = true;
      this._lost(ws, 1008, err.message);
    }

    _startPings(ws) {
      clearInterval(this._pingTimer);
      this._pingTimer = setInterval(() => {
        // ws.close() on a dead network waits for a closing handshake that never comes, so a
        // missing pong drops the socket at once (_lost) instead.
        const dead = setTimeout(() => this._lost(ws, 1006, "no pong"), PONG_WITHIN);
        const done = () => clearTimeout(dead);
        this._call(ws, "ping", {}).then(done, done);
      }, PING_EVERY);
    }

    _lost(ws, code, reason) {
      if (ws !== this._ws) return; // already handled
      this._ws = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch (err) {
        // already closing
      }
      clearInterval(this._pingTimer);
      const gone = new Error(`connection closed (${code})`);
      for (const pending of this._pending.values()) pending.reject(gone);
      this._pending.clear();
      for (const sub of this._subs.values()) sub.ready = false;
      if (this._closed || code === 1008) {
        // 1008: refused by policy (Origin, per-IP limit, authentication); retrying won't help.
        this._closed = true;
        this._rejectQueue(gone);
        this._setState("closed", { code, reason });
        return;
      }
      this._setState("disconnected", { code, reason });
      let delay;
      if (code === 4000) {
        // The server is draining: another instance is ready now. Jitter spreads the herd.
        this._attempt = 0;
        delay = Math.random() * BACKOFF_MIN;
      } else {
        // Exponential backoff with full jitter: a random delay up to the doubled ceiling.
        delay = Math.random() * Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this._attempt);
        this._attempt += 1;
      }
      this._timer = setTimeout(() => this._open(), delay);
    }

    // -- frames ----------------------------------------------------------------------------

    _call(ws, method, params) {
      const id = this._nextId++;
      return new Promise((resolve, reject) => {
        this._pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, [method]: params }));
      });
    }

    _request(method, params) {
      if (this.state === "connected") return this._call(this._ws, method, params);
      if (this._closed) return Promise.reject(new Error("the client is closed"));
      return new Promise((resolve, reject) => this._queue.push({ method, params, resolve, reject }));
    }

    _onFrame(ws, text) {
      if (ws !== this._ws) return;
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (err) {
        return;
      }
      if (frame.push) return this._onPush(frame.push);
      const pending = this._pending.get(frame.id);
      if (!pending) return;
      this._pending.delete(frame.id);
      if (frame.error) pending.reject(new RealtimeError(frame.error.code, frame.error.message));
      else pending.resolve(frame.result || {});
    }

    // -- subscriptions ---------------------------------------------------------------------

    async _subscribe(sub) {
      sub.ready = false;
      sub.early = [];
      const params = { channel: sub.channel };
      const recovering = sub.offset !== null && sub.epoch !== null;
      if (recovering) Object.assign(params, { recover: true, offset: sub.offset, epoch: sub.epoch });
      let result;
      try {
        result = await this._request("subscribe", params);
      } catch (err) {
        if (err instanceof RealtimeError) this._subscribeFailed(sub, err);
        return; // otherwise the connection dropped: the reconnect subscribes again
      }
      if (this._subs.get(sub.channel) !== sub) {
        // unsubscribed while the subscribe was in flight
        this._request("unsubscribe", { channel: sub.channel }).catch(() => {});
        return;
      }
      const early = sub.early;
      sub.early = [];
      sub.ready = true;
      if (result.resync) {
        sub.offset = result.offset;
        sub.epoch = result.epoch;
        call(sub.handlers.onResync, sub);
      } else if (recovering) {
        this._deliver(sub, result.epoch, result.pubs || []);
      } else {
        // A fresh subscribe of a channel seen before (its position lost to a resync push)
        // cannot tell what was published meanwhile: the page must reload its state.
        const seenBefore = sub.epoch !== null;
        sub.offset = result.offset;
        sub.epoch = result.epoch;
        if (seenBefore) call(sub.handlers.onResync, sub);
      }
      for (const push of early) this._onPush(push);
    }

    _subscribeFailed(sub, err) {
      if (this._subs.get(sub.channel) !== sub) return;
      if (err.code === 429 || err.code >= 500) {
        // Transient: try again later on this connection (a reconnect would also retry).
        const delay = BACKOFF_MIN + Math.random() * BACKOFF_MAX;
        setTimeout(() => {
          if (this._subs.get(sub.channel) === sub && this.state === "connected") this._subscribe(sub);
        }, delay);
        return;
      }
      this._subs.delete(sub.channel);
      call(sub.handlers.onError, err, sub);
    }

    async _unsubscribe(sub) {
      if (this._subs.get(sub.channel) !== sub) return;
      this._subs.delete(sub.channel);
      if (this.state === "connected" && sub.ready) {
        await this._request("unsubscribe", { channel: sub.channel }).catch(() => {});
      }
    }

    _onPush(push) {
      const sub = this._subs.get(push.channel);
      if (!sub) return;
      if (!sub.ready) {
        sub.early.push(push);
        return;
      }
      if (push.resync) {
        // The server could not fill a gap itself; the next publication is the new baseline.
        sub.offset = null;
        call(sub.handlers.onResync, sub);
        return;
      }
      this._deliver(sub, push.epoch, push.pubs || []);
    }

    _deliver(sub, epoch, pubs) {
      for (const pub of pubs) {
        if (!sub.ready) return; // a gap was found: the re-subscribe recovers the rest
        if (sub.offset !== null) {
          // A new epoch means the channel's history was lost: recovering gets a resync.
          if (epoch !== sub.epoch || pub.offset > sub.offset + 1) return this._recover(sub);
          if (pub.offset <= sub.offset) continue; // a duplicate (seen before a reconnect)
        }
        sub.offset = pub.offset;
        sub.epoch = epoch;
        call(sub.handlers.onPublication, { channel: sub.channel, offset: pub.offset, epoch, data: pub.data });
      }
    }

    async _recover(sub) {
      // The protocol has no "recover" on a live subscription (a second subscribe is 409), so
      // a gap is filled by unsubscribing and subscribing again from the last offset.
      sub.ready = false;
      try {
        await this._request("unsubscribe", { channel: sub.channel });
      } catch (err) {
        if (!(err instanceof RealtimeError)) return; // connection dropped: reconnect recovers
      }
      if (this._subs.get(sub.channel) === sub) this._subscribe(sub);
    }
  }

  TenfoldRealtime.RealtimeError = RealtimeError;
  root.TenfoldRealtime = TenfoldRealtime;
  if (typeof module === "object" && module.exports) module.exports = TenfoldRealtime;
})(typeof window !== "undefined" ? window : globalThis);
