// twinsite operations console: sign-in, live state over server-sent events, operator actions.
// Everything from the server is written with textContent (never as HTML): firm names and details
// come from registrations and are not trusted.
(function () {
  "use strict";

  var me = null;          // {role, who, csrf}
  var source = null;      // EventSource
  var last = null;        // last ConsoleState
  var reportShown = null; // report.html name already loaded in the iframe

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") e.textContent = attrs[k];
        else if (k === "class") e.className = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function td(text, cls) { return el("td", { text: text == null ? "–" : String(text), class: cls || "" }); }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function banner(text, info) {
    var b = $("banner");
    if (!text) { b.hidden = true; b.textContent = ""; return; }
    b.hidden = false;
    b.className = info ? "info" : "";
    b.textContent = text;
  }

  function clock(ms) {
    if (!ms) return "–";
    var d = new Date(ms);
    function p(n) { return (n < 10 ? "0" : "") + n; }
    return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function siteClass(site) { return site ? "site-" + site : "disconnected"; }

  // ---- sign-in --------------------------------------------------------------------------------

  function setMe(m) {
    me = m;
    var signedIn = !!m;
    $("login-form").hidden = signedIn;
    $("whoami").hidden = !signedIn;
    $("console").hidden = !signedIn;
    $("signed-out-note").hidden = signedIn;
    $("actions-panel").hidden = !(m && m.role === "operator");
    if (signedIn) {
      $("who").textContent = m.who;
      $("role").textContent = m.role;
      connect();
    } else {
      if (source) { source.close(); source = null; }
      $("session-status").textContent = "signed out";
      $("session-status").className = "badge";
    }
    document.body.setAttribute("data-role", m ? m.role : "none");
  }

  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (me && me.csrf) headers["X-CSRF-Token"] = me.csrf;
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = t ? JSON.parse(t) : null; } catch (e) { j = { error: t }; }
        return { status: r.status, ok: r.ok, body: j || {} };
      });
    });
  }

  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    api("POST", "/login", { token: $("login-token").value, name: $("login-name").value }).then(function (r) {
      if (r.ok) {
        $("login-token").value = "";
        banner(null);
        setMe(r.body);
      } else {
        banner("Sign-in refused: " + (r.body.error || r.status));
      }
    }, function (e) { banner("Sign-in failed: " + e); });
  });

  $("logout-button").addEventListener("click", function () {
    api("POST", "/logout").then(function () { setMe(null); });
  });

  // ---- live state -----------------------------------------------------------------------------

  function connect() {
    if (source) source.close();
    source = new EventSource("/api/events");
    source.addEventListener("state", function (ev) {
      banner(null);
      try { render(JSON.parse(ev.data)); } catch (e) { banner("Bad state from the server: " + e); }
    });
    source.onerror = function () {
      if (source && source.readyState === EventSource.CLOSED) {
        // Refused (signed out elsewhere, console restarted): ask who we are.
        api("GET", "/api/me").then(function (r) {
          if (r.status === 401) { setMe(null); banner("Signed out: sign in again.", true); }
          else { banner("Connection to the console lost; retrying…"); setTimeout(connect, 2000); }
        }, function () { banner("Connection to the console lost; retrying…"); setTimeout(connect, 2000); });
      } else {
        banner("Connection to the console lost; reconnecting…");
      }
    };
  }

  function render(s) {
    last = s;
    document.body.setAttribute("data-status", s.session.status);
    renderSession(s);
    renderTimeline(s);
    renderSites(s);
    renderMarketData(s);
    renderParticipants(s);
    renderActivity(s);
    renderReport(s);
  }

  function renderSession(s) {
    var sess = s.session;
    $("session-name").textContent = sess.name || "twinsite operations console";
    var meta = [sess.date, sess.time_zone, sess.speed ? "speed ×" + sess.speed : null,
      sess.registration_deadline ? "registration until " + sess.registration_deadline : null]
      .filter(Boolean).join(" · ");
    $("session-meta").textContent = meta;
    $("session-status").textContent = sess.status.replace("_", " ");
    $("session-status").className = "badge " + sess.status;
    $("now-label").textContent = sess.now_label || "--:--:--";
    var cur = sess.phases.filter(function (p) { return p.id === sess.current_phase; })[0];
    $("current-phase").textContent = cur ? cur.title : (sess.status === "finished" ? "session over" : "");
    $("current-phase").setAttribute("data-phase", cur ? cur.id : "");
    var fs = sess.failover_step;
    $("failover-step").textContent = fs && fs.mode
      ? "Failover step: " + fs.mode + " at " + fs.at_label + " (orders: " + fs.orders + ", sequence numbers: " + fs.sequence + ")"
      : "";
    var btnPause = $("btn-pause"), btnResume = $("btn-resume");
    btnPause.disabled = sess.status !== "running";
    btnResume.disabled = sess.status !== "paused";
    var foPending = s.failover.status === "pending" && sess.status !== "finished";
    $("btn-failover-now").disabled = !foPending;
    $("btn-crash-failover").disabled = !foPending;
  }

  function renderTimeline(s) {
    var sess = s.session, box = $("timeline"), list = $("phase-list");
    clear(box); clear(list);
    if (!sess.phases.length) return;
    var t0 = Math.min.apply(null, sess.phases.map(function (p) { return p.start_ms; }));
    var t1 = Math.max.apply(null, sess.phases.map(function (p) { return p.end_ms; }));
    var span = Math.max(1, t1 - t0);
    function pct(ms) { return Math.max(0, Math.min(100, (ms - t0) * 100 / span)); }
    sess.phases.forEach(function (p) {
      var cur = p.id === sess.current_phase;
      var b = el("div", { class: "block " + p.site + (cur ? " current" : ""), title: p.title, text: p.start_label + " " + p.title });
      b.style.left = pct(p.start_ms) + "%";
      b.style.width = (pct(p.end_ms) - pct(p.start_ms)) + "%";
      box.appendChild(b);
      var focus = el("ul", null, p.focus.map(function (f) { return el("li", { text: f }); }));
      list.appendChild(el("div", { class: "phase" + (cur ? " current" : ""), "data-phase": p.id }, [
        el("strong", { text: p.start_label + "–" + p.end_label + " " + p.title }),
        el("div", { class: "note", text: "site: " + p.site }),
        focus
      ]));
    });
    var fs = sess.failover_step;
    if (fs && fs.at_ms) {
      var m = el("div", { class: "marker failover", id: "failover-marker" },
        [el("span", { class: pct(fs.at_ms) > 85 ? "left" : "", text: "failover " + fs.mode + " " + fs.at_label })]);
      m.style.left = pct(fs.at_ms) + "%";
      box.appendChild(m);
    }
    if (s.failover.started_ms && (!fs || Math.abs(s.failover.started_ms - fs.at_ms) > span / 100)) {
      var a = el("div", { class: "marker failover" }, [el("span", { text: "failover started" })]);
      a.style.left = pct(s.failover.started_ms) + "%";
      box.appendChild(a);
    }
    if (sess.now_ms) {
      var n = el("div", { class: "marker now", id: "now-marker" },
        [el("span", { class: pct(sess.now_ms) > 85 ? "left" : "", text: "now " + sess.now_label })]);
      n.style.left = pct(sess.now_ms) + "%";
      box.appendChild(n);
    }
  }

  function renderSites(s) {
    var sites = s.sites;
    var active = $("active-site");
    active.textContent = sites.active || "none (failing over)";
    active.className = siteClass(sites.active);
    var h = $("hashes");
    h.textContent = sites.hashes_equal == null ? "not compared" : (sites.hashes_equal ? "equal" : "DIFFERENT");
    h.className = sites.hashes_equal === false ? "check fail" : (sites.hashes_equal ? "check pass" : "");
    var tb = $("nodes").tBodies[0];
    clear(tb);
    sites.nodes.forEach(function (n) {
      tb.appendChild(el("tr", { "data-node": n.name }, [
        td(n.name), td(n.up ? n.role : "down", n.up ? "" : "check fail"), td(n.leader),
        td(n.commit_index, "num"), td(n.applied_index, "num"), td(n.replication_lag, "num"),
        td(n.state_hash ? n.state_hash.slice(0, 12) : null, "mono")
      ]));
    });
    var f = s.failover;
    var st = $("failover-status");
    st.textContent = f.status.replace("_", " ");
    st.className = "badge " + f.status;
    var parts = [];
    if (f.mode) parts.push("mode: " + f.mode);
    if (f.started_ms) parts.push("started " + clock(f.started_ms));
    if (f.backup_open_ms) parts.push("backup open " + clock(f.backup_open_ms));
    if (f.rto_ms != null) parts.push("RTO " + f.rto_ms + " ms");
    if (f.acked_orders_lost != null) parts.push("acknowledged orders lost: " + f.acked_orders_lost);
    if (f.state_hashes_equal != null) parts.push("state hashes " + (f.state_hashes_equal ? "equal" : "DIFFERENT"));
    $("failover-summary").textContent = parts.join(" · ");
    $("failover-summary").setAttribute("data-rto", f.rto_ms == null ? "" : String(f.rto_ms));
    var ol = $("failover-timeline");
    clear(ol);
    f.timeline.forEach(function (e) {
      ol.appendChild(el("li", null, [el("span", { class: "when", text: e.session_time || clock(e.at_ms) }), el("span", { text: e.event })]));
    });
  }

  function renderMarketData(s) {
    var md = s.market_data;
    $("dr-signal").textContent = (md.dr_signal || "–").replace("_", " ") + (md.dr_signal_ms ? " at " + clock(md.dr_signal_ms) : "");
    $("rts-logons").textContent = md.rts_logons;
    $("rts-served").textContent = md.rts_requests_served;
    var tb = $("channels").tBodies[0];
    clear(tb);
    md.channels.forEach(function (c) {
      tb.appendChild(el("tr", { "data-channel": String(c.id) }, [
        td(c.id), td(c.platform), td(c.product), td(c.site, siteClass(c.site)), td(c.seq, "num")
      ]));
    });
  }

  function failing(p) { return p.checks.some(function (c) { return c.passed === false; }); }

  function renderParticipants(s) {
    var sel = $("filter-kind");
    var kinds = {};
    s.participants.forEach(function (p) { kinds[p.kind] = true; });
    Object.keys(kinds).sort().forEach(function (k) {
      if (!sel.querySelector('option[value="' + k.replace(/[^A-Za-z0-9_-]/g, "") + '"]')) {
        sel.appendChild(el("option", { value: k, text: k }));
      }
    });
    var kind = sel.value, onlyFailing = $("filter-failing").checked;
    var rows = s.participants.filter(function (p) {
      return (!kind || p.kind === kind) && (!onlyFailing || failing(p));
    });
    $("participant-count").textContent = rows.length + " of " + s.participants.length;
    var tb = $("participants").tBodies[0];
    clear(tb);
    rows.forEach(function (p) {
      var checks = el("td", { class: "checks" }, p.checks.map(function (c) {
        var cls = c.passed === true ? "pass" : (c.passed === false ? "fail" : "");
        var mark = c.passed === true ? "✓ " : (c.passed === false ? "✗ " : "… ");
        return el("span", { class: "check " + cls, title: c.phase + ": " + (c.detail || "not decided yet"), text: mark + c.name });
      }));
      tb.appendChild(el("tr", { "data-id": p.id, "data-kind": p.kind, "data-failing": String(failing(p)) }, [
        td(p.id), td(p.firm), td(p.kind), td(p.platform),
        td(p.connected || "not connected", "connected " + siteClass(p.connected)),
        td(p.orders, "num"), td(p.fills, "num"), checks
      ]));
    });
  }

  function renderActivity(s) {
    var ol = $("activity");
    clear(ol);
    var items = s.activity.slice(-300).reverse();
    items.forEach(function (a) {
      ol.appendChild(el("li", null, [
        el("span", { class: "when", text: (a.session_time ? a.session_time + " " : "") + clock(a.at_ms) }),
        el("span", { class: "who", text: a.who }),
        el("span", { class: "what", text: a.what })
      ]));
    });
  }

  function renderReport(s) {
    var r = s.reports;
    $("report-panel").hidden = !r;
    if (!r) return;
    $("link-report-html").href = "/reports/" + encodeURIComponent(r.html);
    $("link-report-json").href = "/reports/" + encodeURIComponent(r.json);
    $("link-participants-csv").href = "/reports/" + encodeURIComponent(r.csv);
    if (reportShown !== r.html) {
      reportShown = r.html;
      $("report-frame").src = "/reports/" + encodeURIComponent(r.html);
    }
  }

  $("filter-kind").addEventListener("change", function () { if (last) renderParticipants(last); });
  $("filter-failing").addEventListener("change", function () { if (last) renderParticipants(last); });

  // ---- operator actions -----------------------------------------------------------------------

  function result(text, ok) {
    var r = $("action-result");
    r.textContent = text;
    r.className = "result " + (ok ? "ok" : "err");
  }

  function act(name, body) {
    result("sending " + name + "…", true);
    return api("POST", "/api/actions/" + name, body).then(function (r) {
      if (r.ok) result(name + ": " + (r.body.message || "done"), true);
      else result(name + " refused: " + (r.body.error || ("HTTP " + r.status)), false);
      return r;
    }, function (e) { result(name + " failed: " + e, false); });
  }

  function confirmThen(text, okLabel, then) {
    var d = $("confirm-dialog");
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    d.returnValue = "";
    d.addEventListener("close", function onClose() {
      d.removeEventListener("close", onClose);
      if (d.returnValue === "ok") then();
      else result("cancelled: nothing was sent", true);
    });
    d.showModal();
  }

  $("btn-pause").addEventListener("click", function () { act("pause", {}); });
  $("btn-resume").addEventListener("click", function () { act("resume", {}); });
  $("btn-failover-now").addEventListener("click", function () {
    confirmThen("Start the failover to the backup site now? Every participant's session at the primary site is closed.",
      "Fail over now", function () { act("failover-now", { confirm: true }); });
  });
  $("btn-crash-failover").addEventListener("click", function () {
    confirmThen("Crash the primary site now? The backup and the witness elect a new leader; nothing is handed over.",
      "Crash the primary", function () { act("crash-failover", { confirm: true }); });
  });
  $("register-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var ids = $("reg-brokers").value.split(/[\s,]+/).filter(Boolean);
    var bad = ids.filter(function (x) { return !/^\d+$/.test(x); });
    if (bad.length) { result("register refused: broker ids are numbers (" + bad.join(", ") + ")", false); return; }
    act("register", {
      firm: $("reg-firm").value,
      kind: $("reg-kind").value,
      broker_ids: ids.map(Number),
      contact: $("reg-contact").value,
      source_ips: $("reg-ips").value.split(/[\s,]+/).filter(Boolean)
    }).then(function (r) { if (r && r.ok) $("register-form").reset(); });
  });

  // ---- start ----------------------------------------------------------------------------------

  api("GET", "/api/me").then(function (r) { setMe(r.ok ? r.body : null); }, function () { setMe(null); });
})();
