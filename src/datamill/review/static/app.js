// datamill review: the pages' behaviour. Record text only ever reaches the page through text nodes
// (el() below, textContent, textarea.value) — never innerHTML — and the server's CSP forbids inline
// script, so text such as <script> or <img onerror> shows as text and runs nothing.
"use strict";

(() => {
  const body = document.body;
  const S = JSON.parse(body.dataset.strings || "{}");
  const C = JSON.parse(body.dataset.config || "{}");
  const CSRF = body.dataset.csrf || "";

  const fmt = (key, vars) => (S[key] || key).replace(/\{(\w+)\}/g, (_, k) => String(vars && k in vars ? vars[k] : ""));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  async function api(path, json) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (json !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = CSRF;
      init.body = JSON.stringify(json);
    }
    const r = await fetch(path, init);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : r.status + " " + r.statusText);
    return data;
  }

  // Text with ``` fences: prose keeps its line breaks, fenced parts become code blocks. Text nodes only.
  function richText(text) {
    const box = el("div", { class: "text" });
    String(text).split(/^```[^\n]*$/m).forEach((part, i) => {
      const clean = part.replace(/^\n/, "").replace(/\n$/, "");
      if (i % 2) box.append(el("pre", { class: "code" }, el("code", {}, clean)));
      else if (clean) box.append(el("div", { class: "prose" }, clean));
    });
    return box;
  }

  function setProgress(p) {
    const node = document.getElementById("progress");
    if (node && p) node.textContent = fmt("progress", { done: p.answered, total: p.total });
  }

  function toggle(id, force) {
    const node = document.getElementById(id);
    if (node) node.hidden = force === undefined ? !node.hidden : !force;
  }

  const helpButton = document.getElementById("help-button");
  if (helpButton) helpButton.addEventListener("click", () => toggle("help"));
  const guideButton = document.getElementById("guidelines-button");
  if (guideButton) guideButton.addEventListener("click", () => toggle("guidelines"));
  const help = document.getElementById("help");
  if (help) help.addEventListener("click", (e) => { if (e.target === help) toggle("help", false); });

  const typing = (t) => t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");

  // ---------------------------------------------------------------- focus view
  function focusPage() {
    const state = { view: null, mode: "view", ratings: {}, active: 0 };
    const $ = (id) => document.getElementById(id);

    async function load(id) {
      status("");
      if (id === null || id === undefined) {
        const next = await api("/api/next");
        setProgress(next.progress);
        id = next.id;
      }
      if (id === null) {
        state.view = null;
        $("done-all").hidden = false;
        $("item").replaceChildren();
        $("actions").replaceChildren();
        $("suggestions").replaceChildren();
        $("item-title").textContent = "";
        $("item-where").textContent = "";
        $("questions").replaceChildren();
        $("questions").hidden = true;
        history.replaceState(null, "", "/");
        return;
      }
      state.view = await api("/api/assignments/" + encodeURIComponent(id));
      state.mode = "view";
      state.ratings = Object.assign({}, (state.view.answer && state.view.answer.ratings) || {});
      state.active = 0;
      $("done-all").hidden = true;
      history.replaceState(null, "", "/#a=" + state.view.assignment.id);
      render();
      renderQuestions();  // only here: a change of mode (edit, reject) keeps what was filled in
    }

    function status(text, bad) {
      $("status").textContent = text;
      $("status").className = bad ? "status bad" : "status";
    }

    function turnBox(turn, editable) {
      const head = el("div", { class: "role" }, turn.role);
      const content = editable
        ? el("textarea", { class: "edit", "data-key": turn.key, rows: Math.min(18, Math.max(3, turn.content.split("\n").length + 1)) })
        : richText(turn.content);
      if (editable) content.value = turn.content;
      return el("div", { class: "turn role-" + turn.role, "data-key": turn.key }, head, content);
    }

    function render() {
      const v = state.view;
      const item = v.item;
      $("item-title").textContent = fmt("item", { n: v.assignment.number }) + " · " + (S[v.assignment.status] || v.assignment.status);
      const where = item.where || {};
      $("item-where").textContent = [where.source && where.source.split("/").pop() + (where.line !== undefined ? ":" + where.line : where.index !== undefined ? "#" + where.index : ""), item.record_id].filter(Boolean).join(" · ");
      $("prev").disabled = v.prev === null;
      $("next").disabled = v.next === null;
      const box = $("item");
      box.replaceChildren();
      if (item.candidates) {
        box.append(el("div", { class: "prompt" }, el("h3", {}, S.prompt), item.prompt.map((t) => turnBox(t, false))));
        box.append(el("div", { class: "pair" }, item.candidates.map((c) =>
          el("div", { class: "candidate", "data-side": c.side }, el("h3", {}, S["answer_" + c.side.toLowerCase()]), richText(c.text)))));
      } else {
        const editing = state.mode === "edit";
        box.append(el("div", { class: "turns" + (editing ? " editing" : "") }, item.turns.map((t) => turnBox(t, editing))));
      }
      if (item.rank) {
        box.append(el("div", { class: "rank" }, item.rank.map((c, i) =>
          el("div", { class: "candidate", "data-candidate": i }, el("h3", {}, fmt("candidate", { n: i + 1 })), richText(c.text)))));
      }
      if (item.tools !== undefined) {
        box.append(el("details", { class: "tools" }, el("summary", {}, S.tools), el("pre", {}, JSON.stringify(item.tools, null, 2))));
      }
      renderSuggestions(item);
      renderActions();
      if (state.mode === "edit") {
        const first = box.querySelector("textarea");
        if (first) first.focus();
      }
    }

    function hintText(h) {
      if (h.kind === "drop") return `${h.op || "filter"}${h.step !== undefined ? " (step " + h.step + ")" : ""}: ${h.reason || ""}`;
      if (h.kind === "score") return `${h.source}: ${h.score}/${h.max}${h.reason ? " — " + h.reason : ""}`;
      if (h.kind === "value") return `${h.source}: ${h.value}`;
      if (h.kind === "candidate_score") return `${h.source}: ${h.side} ${h.score}/${h.max}${h.reason ? " — " + h.reason : ""}`;
      if (h.kind === "label") return `${h.source}: ${h.label ? S.desirable : S.undesirable}`;
      if (h.kind === "prefers") {
        const what = h.side ? (h.side === "A" ? S.a_better : S.b_better) : S.tie;
        const extra = [h.consistent === false ? "position-inconsistent" : "", h.margin !== undefined ? "margin " + Number(h.margin).toFixed(2) : ""].filter(Boolean).join(", ");
        return `${h.source}: ${what}${extra ? " (" + extra + ")" : ""}`;
      }
      return `${h.source}: ${JSON.stringify(h)}`;
    }

    function renderSuggestions(item) {
      const list = el("ul", {});
      for (const h of item.suggestions || []) list.append(el("li", {}, hintText(h)));
      for (const c of item.candidates || []) {
        const bits = ["score", "rating", "wins"].filter((k) => c[k] !== undefined).map((k) => k + " " + c[k]);
        if (bits.length || c.reason) list.append(el("li", {}, `${c.side}: ${bits.join(", ")}${c.reason ? " — " + c.reason : ""}`));
      }
      const panel = $("suggestions");
      panel.replaceChildren(el("h3", {}, S.suggestions), list.children.length ? list : el("p", {}, S.no_suggestions));
    }

    // ------------------------------------------------ questions (--questions): native form controls, so
    // Tab, arrows and Space work in them; q jumps in, Esc jumps back out to the shortcuts
    function renderQuestions() {
      const panel = $("questions");
      const names = state.view.item.questions || [];
      const asked = (C.questions || []).filter((q) => names.includes(q.name));
      const prior = (state.view.answer && state.view.answer.responses) || {};
      panel.replaceChildren();
      panel.hidden = !asked.length;
      if (!asked.length) return;
      panel.append(el("h3", {}, S.questions));
      for (const q of asked) panel.append(questionBox(q, prior[q.name], !state.view.assignment.mine));
    }

    function choice(input, label) {
      return el("label", { class: "choice" }, input, " ", label);
    }

    function questionBox(q, value, readonly) {
      const id = "q-" + q.name;
      const box = el("fieldset", { class: "question", "data-question": q.name, "data-kind": q.kind, disabled: readonly },
        el("legend", {}, q.title, q.required ? el("span", { class: "req", title: S.required }, " *") : null));
      if (q.description) box.append(el("div", { class: "where" }, q.description));
      if (q.kind === "label" || q.kind === "multi_label") {
        for (const label of q.labels) {
          const input = el("input", { type: q.kind === "label" ? "radio" : "checkbox", name: id, value: label });
          input.checked = q.kind === "label" ? value === label : Array.isArray(value) && value.includes(label);
          box.append(choice(input, label));
        }
      } else if (q.kind === "rating") {
        for (const c of q.criteria) {
          const row = el("div", { class: "q-criterion", role: "radiogroup", "aria-label": c.name }, el("span", { class: "crit" }, c.name));
          for (let n = 1; n <= q.scale; n++) {
            const input = el("input", { type: "radio", name: id + "-" + c.name, value: n, "data-criterion": c.name });
            input.checked = !!value && value[c.name] === n;
            row.append(choice(input, String(n)));
          }
          if (c.description) row.append(el("span", { class: "where" }, c.description));
          box.append(row);
        }
      } else if (q.kind === "text" || q.kind === "edit") {
        const area = el("textarea", { name: id, rows: q.kind === "edit" ? 6 : 2, "aria-label": q.title });
        area.value = typeof value === "string" ? value : q.kind === "edit" ? state.view.item.answer || "" : "";
        box.append(area);
      } else if (q.kind === "ranking") {
        const n = state.view.item.rank.length;
        state.view.item.rank.forEach((_, i) => {
          const pick = el("select", { name: id + "-" + i, "data-candidate": i }, el("option", { value: "" }, "—"));
          for (let r = 1; r <= n; r++) pick.append(el("option", { value: r }, String(r)));
          if (Array.isArray(value)) pick.value = String(value[i]);
          box.append(el("label", { class: "choice" }, fmt("candidate", { n: i + 1 }) + " · " + S.rank + " ", pick));
        });
      }
      return box;
    }

    function responses() {
      const out = {};
      for (const box of document.querySelectorAll("#questions fieldset.question")) {
        const q = C.questions.find((x) => x.name === box.dataset.question);
        const checked = [...box.querySelectorAll("input:checked")];
        let v;
        if (q.kind === "label") v = checked.length ? checked[0].value : undefined;
        else if (q.kind === "multi_label") v = checked.map((i) => i.value);
        else if (q.kind === "rating") v = checked.length ? Object.fromEntries(checked.map((i) => [i.dataset.criterion, Number(i.value)])) : undefined;
        else if (q.kind === "ranking") {
          const ranks = [...box.querySelectorAll("select")].map((x) => (x.value ? Number(x.value) : null));
          v = ranks.every((r) => r === null) ? undefined : ranks;
        } else v = box.querySelector("textarea").value;
        if (v !== undefined) out[q.name] = v;
      }
      return out;
    }

    function button(label, key, onclick, extra) {
      const chosen = state.view.answer && extra && extra.decision && state.view.answer.decision === extra.decision;
      return el("button", { type: "button", class: (extra && extra.cls ? extra.cls : "") + (chosen ? " chosen" : ""), "data-action": (extra && extra.decision) || label, onclick },
        label, key ? el("kbd", {}, key) : null);
    }

    function reasonBox(placeholder) {
      const input = el("input", { type: "text", id: "reason", class: "reason", placeholder, maxlength: 4000, autocomplete: "off" });
      if (state.view.answer && state.view.answer.reason) input.value = state.view.answer.reason;
      return input;
    }

    function renderActions() {
      const bar = $("actions");
      bar.replaceChildren();
      const a = state.view.answer;
      if (a) bar.append(el("div", { class: "answered" }, fmt("answered_as", { decision: a.decision })));
      if (!state.view.assignment.mine) return;
      const task = C.task;
      if (task === "sft" && state.mode === "edit") {
        bar.append(button(S.save, "Ctrl+Enter", saveEdit, { cls: "primary", decision: "save" }), button(S.cancel, "Esc", cancel));
      } else if (task === "sft" && state.mode === "reject") {
        const input = reasonBox(S.reject_reason);
        input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); send({ decision: "reject", reason: input.value }); } });
        bar.append(input, button(S.confirm_reject, "Enter", () => send({ decision: "reject", reason: input.value }), { cls: "danger", decision: "confirm-reject" }), button(S.cancel, "Esc", cancel));
        input.focus();
      } else if (task === "sft") {
        bar.append(button(S.accept, "a", () => send({ decision: "accept" }), { cls: "primary", decision: "accept" }),
          button(S.edit, "e", startEdit, { decision: "edit" }), button(S.reject, "r", startReject, { cls: "danger", decision: "reject" }));
      } else if (task === "pairwise") {
        bar.append(reasonBox(S.reason),
          button(S.a_better, "1", () => choose("a"), { decision: "a" }), button(S.b_better, "2", () => choose("b"), { decision: "b" }),
          button(S.tie, "t", () => choose("tie"), { decision: "tie" }), button(S.both_bad, "b", () => choose("both_bad"), { decision: "both_bad" }));
      } else if (task === "kto") {
        bar.append(reasonBox(S.reason), button(S.desirable, "a", () => choose("desirable"), { cls: "primary", decision: "desirable" }),
          button(S.undesirable, "r", () => choose("undesirable"), { cls: "danger", decision: "undesirable" }));
      } else if (task === "label") {
        C.labels.forEach((label, i) => bar.append(el("button", {
          type: "button", "data-action": "label", "data-label": label,
          class: a && a.labels && a.labels[0] === label ? "chosen" : "", onclick: () => send({ labels: [label] }),
        }, label, i < 9 ? el("kbd", {}, String(i + 1)) : null)));
      } else if (task === "rating") {
        const grid = el("div", { class: "ratings" });
        C.criteria.forEach((crit, ci) => {
          const row = el("div", { class: "criterion" + (ci === state.active ? " active" : ""), "data-criterion": crit }, el("span", { class: "crit" }, crit));
          for (let n = 1; n <= C.scale; n++) {
            row.append(el("button", {
              type: "button", class: state.ratings[crit] === n ? "chosen" : "", "data-score": n,
              onclick: () => { rate(ci, n); },
            }, String(n)));
          }
          grid.append(row);
        });
        bar.append(grid, button(S.submit, "Enter", submitRatings, { cls: "primary", decision: "rate" }));
      }
    }

    function rate(ci, n) {
      state.ratings[C.criteria[ci]] = n;
      state.active = Math.min(ci + 1, C.criteria.length - 1);
      renderActions();
    }

    function submitRatings() {
      if (C.criteria.some((c) => !state.ratings[c])) { status(fmt("error", { error: C.criteria.filter((c) => !state.ratings[c]).join(", ") }), true); return; }
      send({ ratings: state.ratings });
    }

    function choose(decision) {
      const reason = document.getElementById("reason");
      send({ decision, reason: reason ? reason.value : undefined });
    }

    function startEdit() { state.mode = "edit"; render(); }
    function startReject() { state.mode = "reject"; renderActions(); }
    function cancel() { state.mode = "view"; render(); }

    function saveEdit() {
      const edits = {};
      for (const area of document.querySelectorAll("#item textarea.edit")) {
        const turn = state.view.item.turns.find((t) => t.key === area.dataset.key);
        if (turn && area.value !== turn.content) edits[area.dataset.key] = area.value;
      }
      send(Object.keys(edits).length ? { decision: "edit", edits } : { decision: "accept" });
    }

    async function send(answer) {
      if ((C.questions || []).length) answer = Object.assign({ responses: responses() }, answer);
      try {
        const out = await api(`/api/assignments/${state.view.assignment.id}/answer`, answer);
        setProgress(out.progress);
        status(S.saved);
        await load(out.next);
        status(S.saved);
      } catch (err) {
        status(fmt("error", { error: err.message }), true);
      }
    }

    function go(which) {
      const id = state.view && state.view[which];
      if (id !== null && id !== undefined) load(id).catch((err) => status(fmt("error", { error: err.message }), true));
    }

    $("prev").addEventListener("click", () => go("prev"));
    $("next").addEventListener("click", () => go("next"));

    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && e.target.closest && e.target.closest("#questions")) { e.target.blur(); return; }
      if (e.key === "Escape") {
        toggle("help", false);
        if (state.mode !== "view") cancel();
        else toggle("guidelines", false);
        return;
      }
      if (state.mode === "edit" && e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); saveEdit(); return; }
      if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "?") { toggle("help"); return; }
      if (e.key === "g") { toggle("guidelines"); return; }
      if (e.key === "j") { go("next"); return; }
      if (e.key === "k") { go("prev"); return; }
      if (e.key === "q" && !$("questions").hidden) {
        const first = $("questions").querySelector("input, textarea, select");
        if (first) { e.preventDefault(); first.focus(); }
        return;
      }
      if (!state.view || !state.view.assignment.mine || state.mode !== "view") return;
      const task = C.task;
      const key = e.key;
      let handled = true;
      if (task === "sft" && key === "a") send({ decision: "accept" });
      else if (task === "sft" && key === "e") startEdit();
      else if (task === "sft" && key === "r") startReject();
      else if (task === "pairwise" && key === "1") choose("a");
      else if (task === "pairwise" && key === "2") choose("b");
      else if (task === "pairwise" && key === "t") choose("tie");
      else if (task === "pairwise" && key === "b") choose("both_bad");
      else if (task === "kto" && key === "a") choose("desirable");
      else if (task === "kto" && key === "r") choose("undesirable");
      else if (task === "label" && /^[1-9]$/.test(key) && Number(key) <= C.labels.length) send({ labels: [C.labels[Number(key) - 1]] });
      else if (task === "rating" && /^[1-9]$/.test(key) && Number(key) <= C.scale) rate(state.active, Number(key));
      else if (task === "rating" && key === "Enter") submitRatings();
      else handled = false;
      if (handled) e.preventDefault();
    });

    const m = /^#a=(\d+)$/.exec(location.hash);
    load(m ? Number(m[1]) : null).catch((err) => status(fmt("error", { error: err.message }), true));
  }

  // ---------------------------------------------------------------- bulk table
  function tablePage() {
    const form = document.getElementById("filters");
    const tbody = document.getElementById("rows");
    const more = document.getElementById("more");
    let offset = 0;

    async function fetchRows(reset) {
      if (reset) { offset = 0; tbody.replaceChildren(); }
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(form).entries()) if (v) params.set(k, v);
      params.set("offset", String(offset));
      params.set("limit", "50");
      const data = await api("/api/table?" + params.toString());
      for (const r of data.rows) {
        const mine = C.role === "adjudicator" || r.annotator === C.name;
        const tr = el("tr", { class: mine ? "link" : "", "data-assignment": r.assignment },
          el("td", {}, String(r.number)), el("td", {}, r.annotator), el("td", {}, S[r.status] || r.status),
          el("td", {}, r.decision || ""), el("td", {}, r.score === null || r.score === undefined ? "" : String(r.score)),
          el("td", { class: "snippet" }, r.snippet));
        if (mine) tr.addEventListener("click", () => { location.href = "/#a=" + r.assignment; });
        tbody.append(tr);
      }
      offset += data.rows.length;
      document.getElementById("count").textContent = fmt("rows", { shown: offset, total: data.total });
      more.hidden = offset >= data.total;
    }

    form.addEventListener("submit", (e) => { e.preventDefault(); fetchRows(true); });
    more.addEventListener("click", () => fetchRows(false));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { toggle("help", false); toggle("guidelines", false); return; }
      if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "?") toggle("help");
      if (e.key === "g") toggle("guidelines");
    });
    fetchRows(true);
  }

  // ---------------------------------------------------------------- stats
  function statsPage() {
    const show = (x) => (x === null || x === undefined ? "—" : typeof x === "number" ? x.toFixed(3) : String(x));
    api("/api/stats").then((data) => {
      const people = document.querySelector("#people tbody");
      for (const p of data.annotators) {
        const bias = p.first_position_share;
        const major = p.majority_agreement;
        people.append(el("tr", {}, el("td", {}, p.name), el("td", {}, p.role), el("td", {}, `${p.answered} / ${p.total}`),
          el("td", {}, bias === null || bias === undefined ? "—" : (100 * bias).toFixed(0) + "%"),
          el("td", {}, major === null || major === undefined ? "—" : `${(100 * major).toFixed(0)}% (${p.majority_checks})`)));
      }
      const L = data.learner;
      let said = !L.enabled ? S.learner_off : !L.fit ? fmt("learner_waiting", { need: L.min_decisions, have: L.decisions })
        : L.fit.accuracy === null ? fmt("learner_no_accuracy", { decisions: L.fit.decisions })
        : fmt("learner_fit", { accuracy: (100 * L.fit.accuracy).toFixed(1) + "%", folds: L.fit.folds, decisions: L.fit.decisions, at: L.fit.at });
      if (L.refitting) said += " " + S.learner_refitting;
      if (L.error) said += " (" + L.error + ")";
      document.getElementById("learner-status").textContent = said;
      document.getElementById("learner-auto").textContent = fmt("auto_decided", { n: L.auto }) +
        (L.auto ? " — " + Object.entries(L.auto_decisions).map(([k, n]) => `${n} × ${k}`).join(", ") : "");
      document.getElementById("conflicts-status").textContent = S.conflicts + ": " + fmt("conflict_count", data.conflicts);
      const table = document.querySelector("#agreement tbody");
      for (const q of data.agreement) {
        for (const m of q.measures) table.append(el("tr", {}, el("td", {}, q.question), el("td", {}, m.measure), el("td", {}, String(m.items)), el("td", {}, show(m.value))));
      }
      document.getElementById("agreement-note").textContent = data.note || "";
      const gold = document.querySelector("#gold tbody");
      for (const g of data.gold || []) {
        gold.append(el("tr", {}, el("td", {}, g.name), el("td", {}, String(g.items)), el("td", {}, `${g.correct} / ${g.checks}`),
          el("td", {}, g.accuracy === null ? "—" : (100 * g.accuracy).toFixed(0) + "%")));
      }
      document.getElementById("gold-section").hidden = !(data.gold || []).length;
      if (data.false_drops !== undefined) {
        const drops = document.querySelector("#drops tbody");
        for (const d of data.false_drops) {
          drops.append(el("tr", {}, el("td", {}, d.op), el("td", {}, d.reason), el("td", {}, String(d.decided)), el("td", {}, String(d.kept)),
            el("td", {}, d.false_drop_rate === null ? "—" : (100 * d.false_drop_rate).toFixed(0) + "%")));
        }
        document.getElementById("drops-note").textContent = data.false_drops.length ? "" : S.no_false_drops;
        document.getElementById("drops-section").hidden = false;
      }
    }).catch((err) => { document.getElementById("agreement-note").textContent = fmt("error", { error: err.message }); });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { toggle("help", false); toggle("guidelines", false); return; }
      if (typing(e.target)) return;
      if (e.key === "?") toggle("help");
      if (e.key === "g") toggle("guidelines");
    });
  }

  // ---------------------------------------------------------------- conflicts (adjudicator)
  function conflictsPage() {
    const $ = (id) => document.getElementById(id);
    const said = (v) => [v.side ? (v.side === "A" ? S.a_better : S.b_better) : v.decision, v.labels && v.labels.join(", "),
      v.ratings && Object.entries(v.ratings).map(([c, n]) => `${c} ${n}`).join(", ")].filter(Boolean).join(" · ");

    async function list() {
      const data = await api("/api/conflicts?limit=500");
      const rows = $("conflict-rows");
      rows.replaceChildren();
      const open = data.rows.filter((r) => !r.resolved).length;
      $("conflict-count").textContent = fmt("conflict_count", { open, resolved: data.rows.length - open });
      $("conflict-none").hidden = data.total > 0;
      for (const r of data.rows) {
        const tr = el("tr", { class: "link", "data-item": r.item }, el("td", {}, String(r.item)),
          el("td", {}, r.resolved ? S.resolved : S.unresolved),
          el("td", {}, r.answers.map((v) => `${v.annotator}: ${said(v)}`).join(" | ")), el("td", { class: "snippet" }, r.snippet));
        tr.addEventListener("click", () => show(r.item).catch((err) => status(err.message)));
        rows.append(tr);
      }
    }

    function status(text) { $("status").textContent = text; }

    async function show(id) {
      const data = await api("/api/conflicts/" + encodeURIComponent(id));
      const item = data.item;
      const box = $("conflict-item");
      box.replaceChildren();
      const turn = (t) => el("div", { class: "turn role-" + t.role }, el("div", { class: "role" }, t.role), richText(t.content));
      if (item.candidates) {
        box.append(el("div", { class: "prompt" }, el("h3", {}, S.prompt), item.prompt.map(turn)));
        box.append(el("div", { class: "pair" }, item.candidates.map((c) =>
          el("div", { class: "candidate", "data-side": c.side }, el("h3", {}, S["answer_" + c.side.toLowerCase()]), richText(c.text)))));
      } else box.append(el("div", { class: "turns" }, item.turns.map(turn)));
      $("conflict-answers").replaceChildren(...data.answers.map((v) => el("div", { class: "vote " + v.role, "data-annotator": v.annotator },
        el("h4", {}, `${v.annotator}${v.role === "adjudicator" ? " (" + S.resolved + ")" : ""}`), el("div", {}, said(v)),
        v.reason ? el("div", { class: "where" }, v.reason) : null, (v.edited || []).map(turn))));
      const bar = $("conflict-actions");
      bar.replaceChildren();
      const decide = (answer) => api(`/api/conflicts/${id}/decide`, answer).then(() => { status(S.saved); return list(); })
        .catch((err) => status(fmt("error", { error: err.message })));
      const btn = (label, answer, cls) => el("button", { type: "button", class: cls || "", "data-action": answer.decision || "label", onclick: () => decide(answer) }, label);
      const reason = el("input", { type: "text", class: "reason", placeholder: S.reason, maxlength: 4000 });
      const withReason = (answer) => Object.assign({ reason: reason.value || undefined }, answer);
      const task = C.task;
      if (task === "sft") {
        bar.append(reason, el("button", { type: "button", class: "primary", "data-action": "accept", onclick: () => decide(withReason({ decision: "accept" })) }, S.accept),
          el("button", { type: "button", class: "danger", "data-action": "reject", onclick: () => decide(withReason({ decision: "reject" })) }, S.reject));
        for (const v of data.answers.filter((x) => x.edited && x.edited.length)) {
          const edits = Object.fromEntries(v.edited.map((t) => [t.key, t.content]));
          bar.append(btn(fmt("use_edit", { name: v.annotator }), { decision: "edit", edits }));
        }
      } else if (task === "pairwise") {
        for (const [d, label] of [["a", S.a_better], ["b", S.b_better], ["tie", S.tie], ["both_bad", S.both_bad]]) bar.append(btn(label, { decision: d }));
      } else if (task === "kto") {
        bar.append(btn(S.desirable, { decision: "desirable" }, "primary"), btn(S.undesirable, { decision: "undesirable" }, "danger"));
      } else if (task === "label") {
        for (const label of C.labels) bar.append(btn(label, { labels: [label] }));
      } else if (task === "rating") {
        const picks = C.criteria.map((c) => {
          const pick = el("select", { "data-criterion": c });
          for (let n = 1; n <= C.scale; n++) pick.append(el("option", { value: n }, String(n)));
          bar.append(el("label", { class: "choice" }, c + " ", pick));
          return pick;
        });
        bar.append(el("button", { type: "button", class: "primary", "data-action": "rate", onclick: () =>
          decide({ ratings: Object.fromEntries(picks.map((p) => [p.dataset.criterion, Number(p.value)])) }) }, S.submit));
      }
      $("conflict").hidden = false;
    }

    list().catch((err) => { $("conflict-count").textContent = fmt("error", { error: err.message }); });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { toggle("help", false); toggle("guidelines", false); return; }
      if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "?") toggle("help");
      if (e.key === "g") toggle("guidelines");
    });
  }

  if (body.dataset.page === "focus") focusPage();
  else if (body.dataset.page === "conflicts") conflictsPage();
  else if (body.dataset.page === "table") tablePage();
  else if (body.dataset.page === "stats") statsPage();
})();
