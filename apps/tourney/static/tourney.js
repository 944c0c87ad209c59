/*
 * tourney.js: keeps Tourney's page live. No build step, no framework, no inline script:
 * the server renders the page and puts the same state in <script type="application/json"
 * id="tourney-state">; this file takes it from there.
 *
 * - Live: the channel tournament:<id> (tenfold-realtime.js) pushes
 *   {"type": "match", "match": MatchOut, "leaderboard": Leaderboard}; anything older than
 *   what is shown (a lower match version, a lower `completed`) is ignored.
 * - Logged in (POST /auth/session: HttpOnly cookies, the CSRF cookie read here and sent as
 *   X-CSRF-Token; a 401 is retried once after POST /auth/refresh), a player reports the scores
 *   of their team's live matches with the version shown (409: the current state is shown);
 *   the organiser starts and completes matches.
 * - Offline (navigator.onLine false, or a request that cannot reach the server), reports are
 *   queued in localStorage, each with an id of its own, and sent with POST /api/sync once
 *   online: the server answers a replayed id with "duplicate", so none is applied twice.
 */
(function () {
  "use strict";

  const dataBlock = document.getElementById("tourney-state");
  if (!dataBlock) return;
  const boot = JSON.parse(dataBlock.textContent);
  const USER_KEY = "tourney.user"; // {id, username} of who logged in on this browser
  const SYNC_EVERY = 5000; // ms between attempts to send the queue while it is not empty

  const el = (id) => document.getElementById(id);
  const ui = {
    conn: el("conn"),
    queued: el("queued"),
    login: el("login"),
    loginError: el("login-error"),
    me: el("me"),
    meName: el("me-name"),
    logout: el("logout"),
    notice: el("notice"),
    title: el("title"),
    board: el("leaderboard"),
    completed: el("completed"),
    live: el("live"),
    upcoming: el("upcoming"),
    results: el("results"),
  };

  // -- state ---------------------------------------------------------------------------------

  let view = boot.view; // the tournament, as GET /api/tournaments/{id} answers
  const matches = new Map(); // id -> MatchOut, the newest version seen
  let board = null;
  let me = null; // {id, team, organiser}
  const busy = new Set(); // match ids with a request in flight
  const notes = new Map(); // match id -> a message shown on its card
  const inflight = new Set(); // queued action ids being sent
  let flushing = false;
  let rtState = "connecting";
  let everConnected = false;

  function adopt(next) {
    // A reload is the truth, except for what a push made newer while it was on its way.
    view = next;
    const fresh = new Map();
    for (const m of [...next.live, ...next.upcoming, ...next.results]) fresh.set(m.id, m);
    for (const [id, old] of matches) {
      const now = fresh.get(id);
      if (now && old.version > now.version) fresh.set(id, old);
    }
    matches.clear();
    for (const [id, m] of fresh) matches.set(id, m);
    if (!board || next.leaderboard.completed >= board.completed) board = next.leaderboard;
    me = next.you
      ? { id: next.you, team: next.your_team_id, organiser: next.you_organise }
      : null;
  }

  // -- storage ---------------------------------------------------------------------------------

  function storedUser() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || "null");
    } catch (err) {
      return null;
    }
  }

  function queueKey() {
    return me ? `tourney.queue.${me.id}` : null;
  }

  function loadQueue() {
    const key = queueKey();
    if (!key) return [];
    try {
      return JSON.parse(localStorage.getItem(key) || "[]");
    } catch (err) {
      return [];
    }
  }

  function saveQueue(queue) {
    const key = queueKey();
    if (!key) return;
    if (queue.length) localStorage.setItem(key, JSON.stringify(queue));
    else localStorage.removeItem(key);
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // -- HTTP ------------------------------------------------------------------------------------

  function cookie(name) {
    const prefix = name + "=";
    const found = document.cookie.split("; ").find((c) => c.startsWith(prefix));
    return found ? decodeURIComponent(found.slice(prefix.length)) : "";
  }

  function send(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers[boot.csrf_header] = cookie(boot.csrf_cookie);
    return fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function refreshSession() {
    try {
      return (await send("POST", "/auth/refresh", {})).ok;
    } catch (err) {
      return false;
    }
  }

  // Rejects (a TypeError) when the server cannot be reached: the caller treats it as offline.
  async function api(method, path, body) {
    let response = await send(method, path, body);
    if (response.status === 401 && storedUser() && (await refreshSession())) {
      response = await send(method, path, body);
    }
    return response;
  }

  async function problemOf(response) {
    try {
      const body = await response.json();
      return body.detail || body.title || `HTTP ${response.status}`;
    } catch (err) {
      return `HTTP ${response.status}`;
    }
  }

  async function reload() {
    let response;
    try {
      response = await api("GET", `/api/tournaments/${view.id}`);
    } catch (err) {
      return false;
    }
    if (!response.ok) return false;
    adopt(await response.json());
    if (!me && storedUser()) {
      // The session cookie expired: a refresh renews it while the session lives.
      if ((await refreshSession()) && (await reloadOnce())) return true;
      localStorage.removeItem(USER_KEY);
    }
    render();
    return true;
  }

  async function reloadOnce() {
    try {
      const response = await send("GET", `/api/tournaments/${view.id}`);
      if (!response.ok) return false;
      adopt(await response.json());
      render();
      return me !== null;
    } catch (err) {
      return false;
    }
  }

  // -- what arrives ----------------------------------------------------------------------------

  function applyMatch(match) {
    if (!match || match.tournament_id !== view.id) return false;
    const shown = matches.get(match.id);
    if (shown && match.version < shown.version) return false;
    matches.set(match.id, match);
    return true;
  }

  function applyBoard(next) {
    if (!next || next.tournament_id !== view.id) return false;
    if (board && next.completed < board.completed) return false;
    const before = new Map((board ? board.rows : []).map((r) => [r.team_id, r.points]));
    board = next;
    renderBoard(before);
    return true;
  }

  function onMessage(data) {
    if (!data || data.type !== "match") return;
    applyMatch(data.match);
    applyBoard(data.leaderboard);
    renderMatches();
  }

  // -- reporting -------------------------------------------------------------------------------

  function queuedFor(matchId) {
    const mine = loadQueue().filter((a) => a.match_id === matchId);
    return mine.length ? mine[mine.length - 1] : null;
  }

  function shownScore(match) {
    const queued = queuedFor(match.id);
    return queued ? [queued.home, queued.away, true] : [match.home_score, match.away_score, false];
  }

  function enqueue(action) {
    const queue = loadQueue();
    // One waiting report per match: a newer one replaces it, made on the same version.
    const waiting = queue.findIndex((a) => a.match_id === action.match_id && !inflight.has(a.id));
    if (waiting >= 0) {
      action.version = queue[waiting].version;
      queue[waiting] = action;
    } else {
      queue.push(action);
    }
    saveQueue(queue);
    render();
  }

  async function report(matchId, home, away) {
    const match = matches.get(matchId);
    if (!match || !me) return;
    const action = {
      id: newId(),
      type: "report_score",
      match_id: matchId,
      home,
      away,
      version: match.version,
    };
    // Offline, or earlier reports of this match still waiting: keep the order, queue it.
    if (!navigator.onLine || queuedFor(matchId)) {
      enqueue(action);
      flush();
      return;
    }
    busy.add(matchId);
    renderMatches();
    let response;
    try {
      response = await api("POST", `/api/matches/${matchId}/score`, {
        home,
        away,
        version: match.version,
      });
    } catch (err) {
      busy.delete(matchId);
      enqueue(action); // the server could not be reached: sent again once it can
      return;
    }
    busy.delete(matchId);
    if (response.ok) {
      applyMatch(await response.json());
      notes.delete(matchId);
    } else if (response.status === 409) {
      const why = await problemOf(response);
      await refreshMatch(matchId);
      const now = matches.get(matchId);
      notes.set(matchId, `Not saved, the match changed meanwhile (now ${now.home_score}–${now.away_score}): ${why}`);
    } else {
      notes.set(matchId, await problemOf(response));
    }
    renderMatches();
  }

  async function refreshMatch(matchId) {
    try {
      const response = await api("GET", `/api/matches/${matchId}`);
      if (response.ok) applyMatch(await response.json());
    } catch (err) {
      /* offline: the next push or reload brings it */
    }
  }

  async function manage(matchId, what) {
    if (!navigator.onLine) {
      notes.set(matchId, "You are offline: try again once connected.");
      renderMatches();
      return;
    }
    busy.add(matchId);
    renderMatches();
    try {
      const response = await api("POST", `/api/matches/${matchId}/${what}`);
      if (response.ok) {
        applyMatch(await response.json());
        notes.delete(matchId);
      } else {
        notes.set(matchId, await problemOf(response));
        if (response.status === 409) await refreshMatch(matchId);
      }
    } catch (err) {
      notes.set(matchId, "The server cannot be reached: try again once connected.");
    } finally {
      busy.delete(matchId);
      renderMatches();
    }
  }

  async function flush() {
    if (flushing || !me || !navigator.onLine) return;
    const batch = loadQueue().slice(0, 100);
    if (!batch.length) return;
    flushing = true;
    batch.forEach((a) => inflight.add(a.id));
    let response = null;
    try {
      response = await api("POST", "/api/sync", { actions: batch });
    } catch (err) {
      response = null; // still unreachable: the timer tries again
    } finally {
      flushing = false;
      batch.forEach((a) => inflight.delete(a.id));
    }
    if (response === null) return;
    const sentIds = new Set(batch.map((a) => a.id));
    if (!response.ok) {
      if (response.status === 400 || response.status === 422) {
        // The server will never take this batch: drop it rather than block the queue.
        saveQueue(loadQueue().filter((a) => !sentIds.has(a.id)));
        showNotice(`Queued scores refused: ${await problemOf(response)}`);
        render();
      } else if (response.status === 401 || response.status === 403) {
        showNotice("Log in again to send the queued scores.");
      }
      return;
    }
    const { results } = await response.json();
    let rest = loadQueue().filter((a) => !sentIds.has(a.id));
    for (const result of results) {
      const sent = batch.find((a) => a.id === result.id);
      if (!sent) continue;
      if (result.match) applyMatch(result.match);
      if (result.status === "applied" || result.status === "duplicate") {
        notes.delete(sent.match_id);
        // Reports of the same match queued after this one were made on what it produced.
        const produced = result.match ? result.match.version : sent.version;
        rest = rest.map((a) =>
          a.match_id === sent.match_id && a.version === sent.version ? { ...a, version: produced } : a
        );
      } else if (result.status === "conflict") {
        const now = result.match;
        const score = now ? ` (now ${now.home_score}–${now.away_score})` : "";
        notes.set(sent.match_id, `Your offline score ${sent.home}–${sent.away} was not saved: the match changed meanwhile${score}.`);
      } else {
        notes.set(sent.match_id, `Your offline score was refused: ${result.detail || "not allowed"}`);
      }
    }
    saveQueue(rest);
    render();
    if (rest.length) flush();
  }

  // -- rendering -------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function teamName(id) {
    const team = view.teams.find((t) => t.id === id);
    return team ? team.name : `Team ${id}`;
  }

  function gameName(id) {
    const game = view.games.find((g) => g.id === id);
    return game ? game.name : "Game";
  }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleString([], {
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  function canReport(match) {
    if (!me || match.status !== "live") return false;
    return me.organiser || me.team === match.home_team_id || me.team === match.away_team_id;
  }

  function side(match, which, score, editable) {
    const teamId = match[`${which}_team_id`];
    const disabled = busy.has(match.id);
    return h(
      "div",
      { className: `side ${which}` },
      h("span", { className: "team" }, teamName(teamId)),
      editable &&
        h(
          "button",
          {
            type: "button",
            "data-act": `${which}-dec`,
            "data-match": match.id,
            "aria-label": `${teamName(teamId)} minus one`,
            disabled: disabled || score[which] === 0,
          },
          "−"
        ),
      h("span", { className: `score ${which}-score` }, score[which]),
      editable &&
        h(
          "button",
          {
            type: "button",
            "data-act": `${which}-inc`,
            "data-match": match.id,
            "aria-label": `${teamName(teamId)} plus one`,
            disabled: disabled || score[which] >= 999,
          },
          "+"
        )
    );
  }

  function card(match) {
    const [home, away, queued] = shownScore(match);
    const score = { home, away };
    const editable = canReport(match);
    const mine = me && (me.team === match.home_team_id || me.team === match.away_team_id);
    const admin = me && me.organiser && match.status !== "completed";
    return h(
      "article",
      {
        className: `match${mine ? " mine" : ""}`,
        id: `match-${match.id}`,
        "data-status": match.status,
        "data-version": match.version,
      },
      h(
        "div",
        { className: "meta" },
        h("span", { className: "game" }, gameName(match.game_id)),
        h("span", { className: "status" }, match.status),
        h("span", { className: "time" }, when(match.scheduled_at)),
        queued && h("span", { className: "badge" }, "queued")
      ),
      side(match, "home", score, editable),
      side(match, "away", score, editable),
      admin &&
        h(
          "div",
          { className: "admin" },
          match.status === "scheduled"
            ? h("button", { type: "button", "data-act": "start", "data-match": match.id, disabled: busy.has(match.id) }, "Start")
            : h("button", { type: "button", "data-act": "complete", "data-match": match.id, disabled: busy.has(match.id) }, "Complete")
        ),
      notes.has(match.id) && h("p", { className: "note", role: "alert" }, notes.get(match.id))
    );
  }

  function list(container, items) {
    container.replaceChildren(...(items.length ? items.map(card) : [h("p", { className: "empty" }, "None")]));
  }

  function renderMatches() {
    const all = [...matches.values()];
    const byTime = (a, b) => a.scheduled_at - b.scheduled_at || a.id - b.id;
    list(ui.live, all.filter((m) => m.status === "live").sort(byTime));
    list(ui.upcoming, all.filter((m) => m.status === "scheduled").sort(byTime).slice(0, 20));
    list(ui.results, all.filter((m) => m.status === "completed").sort(byTime).reverse().slice(0, 10));
  }

  function renderBoard(before) {
    const body = ui.board.tBodies[0];
    body.replaceChildren(
      ...board.rows.map((r) => {
        const changed = before && before.has(r.team_id) && before.get(r.team_id) !== r.points;
        const diff = r.score_for - r.score_against;
        return h(
          "tr",
          { "data-team": r.team_id, className: changed ? "changed" : null },
          h("td", { className: "rank" }, r.rank),
          h("td", { className: "team" }, r.team),
          h("td", { className: "num" }, r.played),
          h("td", { className: "num wide" }, r.wins),
          h("td", { className: "num wide" }, r.draws),
          h("td", { className: "num wide" }, r.losses),
          h("td", { className: "num" }, diff > 0 ? `+${diff}` : diff),
          h("td", { className: "num points" }, r.points)
        );
      })
    );
    ui.completed.textContent = `${board.completed} completed`;
  }

  function renderConn() {
    let state;
    if (!navigator.onLine) state = "offline";
    else if (!boot.realtime_path) state = "offline";
    else if (rtState === "connected") state = "connected";
    else state = everConnected ? "reconnecting" : "connecting";
    const label = {
      connected: "live",
      reconnecting: "reconnecting…",
      connecting: "connecting…",
      offline: "offline",
    };
    ui.conn.dataset.state = state;
    ui.conn.textContent = label[state];
  }

  function renderQueued() {
    const count = loadQueue().length;
    ui.queued.dataset.count = String(count);
    ui.queued.textContent = `${count} queued`;
    ui.queued.hidden = count === 0;
  }

  function renderAccount() {
    const stored = storedUser();
    ui.login.hidden = me !== null;
    ui.me.hidden = me === null;
    if (me) {
      const name = stored && stored.id === me.id ? stored.username : me.id;
      const role = me.organiser ? "organiser" : me.team ? teamName(me.team) : "viewer";
      ui.meName.textContent = `${name} · ${role}`;
    }
  }

  function render() {
    ui.title.textContent = view.name;
    renderAccount();
    renderConn();
    renderQueued();
    renderBoard(null);
    renderMatches();
  }

  let noticeTimer = null;
  function showNotice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (ui.notice.hidden = true), 8000);
  }

  // -- events ----------------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const matchId = Number(button.dataset.match);
    const match = matches.get(matchId);
    if (!match) return;
    const act = button.dataset.act;
    if (act === "start" || act === "complete") {
      manage(matchId, act);
      return;
    }
    const [home, away] = shownScore(match);
    const step = act.endsWith("-inc") ? 1 : -1;
    const next = act.startsWith("home")
      ? [Math.max(0, home + step), away]
      : [home, Math.max(0, away + step)];
    report(matchId, next[0], next[1]);
  });

  ui.login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(ui.login);
    const username = String(form.get("username") || "");
    const button = ui.login.querySelector("button");
    button.disabled = true;
    ui.loginError.textContent = "";
    try {
      const response = await send("POST", "/auth/session", {
        username,
        password: String(form.get("password") || ""),
      });
      if (!response.ok) {
        ui.loginError.textContent =
          response.status === 401 ? "Wrong username or password." : await problemOf(response);
        return;
      }
      const session = await response.json();
      localStorage.setItem(USER_KEY, JSON.stringify({ id: session.user_id, username }));
      ui.login.reset();
      await reload();
      flush();
    } catch (err) {
      ui.loginError.textContent = "The server cannot be reached.";
    } finally {
      button.disabled = false;
    }
  });

  ui.logout.addEventListener("click", async () => {
    try {
      await api("DELETE", "/auth/session");
    } catch (err) {
      /* offline: the cookies are dropped when the session expires */
    }
    localStorage.removeItem(USER_KEY);
    me = null;
    await reload();
    render();
  });

  // -- live updates ----------------------------------------------------------------------------

  let rt = null;
  let sub = null;
  let generation = 0;

  function connect(since) {
    if (!boot.realtime_path || !window.TenfoldRealtime) return;
    const mine = ++generation;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    rt = new window.TenfoldRealtime(scheme + location.host + boot.realtime_path, {
      onState(state) {
        if (mine !== generation) return; // a client replaced by reconnectNow
        rtState = state;
        if (state === "connected") {
          // The first time: what was published between the page's render and the
          // subscription is not in any push, so read the state once more.
          if (!everConnected) reload();
          everConnected = true;
          flush();
        }
        renderConn();
      },
    });
    sub = rt.subscribe(view.channel, {
      since,
      onPublication(pub) {
        onMessage(pub.data);
      },
      onResync() {
        reload();
      },
      onError(err) {
        showNotice(`Live updates refused: ${err.message}`);
      },
    });
  }

  function reconnectNow() {
    // Back online: do not wait out the client's backoff; resume from the last position.
    if (!rt || rtState === "connected") return;
    const since = sub && sub.offset !== null ? { offset: sub.offset, epoch: sub.epoch } : null;
    generation++;
    rt.close();
    connect(since);
  }

  window.addEventListener("online", () => {
    renderConn();
    reconnectNow();
    flush();
  });
  window.addEventListener("offline", renderConn);
  setInterval(() => {
    if (navigator.onLine && loadQueue().length) flush();
  }, SYNC_EVERY);

  // -- start -----------------------------------------------------------------------------------

  if (!view) {
    ui.conn.hidden = true;
    return;
  }
  adopt(view);
  render();
  if (!me && storedUser()) reload(); // a session whose access cookie expired: refreshed
  connect(null);
  flush();
})();
