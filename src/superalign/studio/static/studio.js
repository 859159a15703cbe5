// superalign studio: keyboard shortcuts, flaw spans, one submission per form. No dependencies, no network.
(function () {
  "use strict";

  // Invitation links carry the token in the URL fragment (#token=...), which browsers never send to a
  // server: fill it into the login form, drop it from the address bar and sign in.
  const login = document.getElementById("login-form");
  function loginFromFragment() {
    const m = location.hash.match(/token=([A-Za-z0-9_-]+)/);
    if (m) {
      login.elements.token.value = m[1];
      history.replaceState(null, "", location.pathname);
      login.requestSubmit();
    }
  }
  if (login) {
    loginFromFragment();
    window.addEventListener("hashchange", loginFromFragment); // a link opened on the login page itself
  }

  const form = document.getElementById("label-form");
  if (!form) return;
  const task = form.dataset.task;

  // One submission per rendered form: a double click or a second Enter sends nothing more (and if a
  // retry does reach the server, it carries the same submission id and records one label).
  let sent = false;
  form.addEventListener("submit", function (e) {
    if (sent) { e.preventDefault(); return; }
    sent = true;
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  });

  function check(name, value) {
    const input = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (input) { input.checked = true; input.focus(); }
  }

  function stepConfidence(delta) {
    const radios = Array.from(form.querySelectorAll('input[name="confidence"]'));
    if (!radios.length) return;
    const at = radios.findIndex(function (r) { return r.checked; });
    const next = at < 0 ? (delta > 0 ? 0 : radios.length - 1) : Math.min(radios.length - 1, Math.max(0, at + delta));
    radios[next].checked = true;
  }

  // ---- flaw marking: spans are offsets in code points of the response text (Python string indices) ----
  const response = document.getElementById("response");
  const flaws = [];
  let pending = null; // {start, end, quote, range}
  const addButton = document.getElementById("add-flaw");

  function codePoints(s) { return Array.from(s).length; }

  function offsetIn(container, node, offset) {
    const r = document.createRange();
    r.setStart(container, 0);
    r.setEnd(node, offset);
    return r.toString().length; // UTF-16 units from the start of the response
  }

  function paintHighlights() {
    if (!(window.CSS && CSS.highlights && window.Highlight)) return;
    const ranges = flaws.map(function (f) { return f.range; });
    CSS.highlights.set("studio-flaw", new Highlight(...ranges));
  }

  function renderFlaws() {
    const list = document.getElementById("flaw-list");
    list.textContent = "";
    flaws.forEach(function (f, i) {
      const li = document.createElement("li");
      const q = document.createElement("q");
      q.textContent = f.quote;
      li.appendChild(q);
      li.appendChild(document.createTextNode(" · " + f.category + " · " + f.severity + (f.comment ? " · " + f.comment : "") + " "));
      const rm = document.createElement("button");
      rm.type = "button"; rm.className = "remove"; rm.textContent = "remove";
      rm.addEventListener("click", function () { flaws.splice(i, 1); renderFlaws(); });
      li.appendChild(rm);
      list.appendChild(li);
    });
    document.getElementById("flaws").value = JSON.stringify(flaws.map(function (f) {
      return { start: f.start, end: f.end, category: f.category, severity: f.severity, comment: f.comment };
    }));
    document.getElementById("flaw-count").textContent = flaws.length
      ? flaws.length + " flaw" + (flaws.length === 1 ? "" : "s") + " marked."
      : "No flaws marked: submitting says you found none.";
    paintHighlights();
  }

  function readSelection() {
    const sel = window.getSelection();
    pending = null;
    if (sel && sel.rangeCount && !sel.isCollapsed) {
      const range = sel.getRangeAt(0);
      if (response.contains(range.startContainer) && response.contains(range.endContainer)) {
        const text = response.textContent;
        const s16 = offsetIn(response, range.startContainer, range.startOffset);
        const e16 = offsetIn(response, range.endContainer, range.endOffset);
        if (e16 > s16) {
          pending = { start: codePoints(text.slice(0, s16)), end: codePoints(text.slice(0, e16)),
                      quote: text.slice(s16, e16), range: range.cloneRange() };
        }
      }
    }
    document.getElementById("selection").textContent = pending ? "Selected: “" + pending.quote + "”" : "Nothing selected.";
    addButton.disabled = !pending;
  }

  function addFlaw() {
    if (!pending) return;
    const comment = document.getElementById("flaw-comment");
    flaws.push({ start: pending.start, end: pending.end, quote: pending.quote, range: pending.range,
                 category: document.getElementById("flaw-category").value,
                 severity: document.getElementById("flaw-severity").value, comment: comment.value.trim() });
    comment.value = "";
    window.getSelection().removeAllRanges();
    pending = null;
    addButton.disabled = true;
    document.getElementById("selection").textContent = "Nothing selected.";
    renderFlaws();
  }

  if (task === "flaw" && response) {
    document.addEventListener("selectionchange", function () {
      const sel = window.getSelection();
      // Keep the last selection while the labeler picks a category or types a comment.
      if (sel && sel.rangeCount && !sel.isCollapsed && response.contains(sel.getRangeAt(0).commonAncestorContainer)) readSelection();
    });
    response.addEventListener("mouseup", readSelection);
    addButton.addEventListener("click", addFlaw);
  }

  // ---- keyboard: 1 / 2 / 0 choose, digits rate, f adds a flaw, Enter submits (Ctrl+Enter in text) ----
  // (review: 1 accepts, 2 rejects)
  document.addEventListener("keydown", function (e) {
    const t = e.target;
    const typing = t.tagName === "TEXTAREA" || t.tagName === "SELECT" ||
      (t.tagName === "INPUT" && (t.type === "text" || t.type === "password"));
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); return; }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (typing) {
      if (e.key === "Enter" && t.tagName === "INPUT") { e.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (task === "pairwise") {
      const choice = { "1": "A", "2": "B", "0": "tie" }[e.key];
      if (choice) { e.preventDefault(); check("choice", choice); return; }
      if (e.key === "ArrowUp" || e.key === "ArrowDown") { e.preventDefault(); stepConfidence(e.key === "ArrowUp" ? 1 : -1); return; }
    }
    if (task === "review") {
      const verdict = { "1": "accept", "2": "reject" }[e.key];
      if (verdict) { e.preventDefault(); check("verdict", verdict); return; }
    }
    if (task === "rating" && /^[0-9]$/.test(e.key)) { e.preventDefault(); check("rating", e.key === "0" ? "10" : e.key); return; }
    if (task === "flaw" && e.key === "f") { e.preventDefault(); addFlaw(); return; }
    if (e.key === "Enter" && task !== "demonstration" && t.tagName !== "BUTTON" && t.tagName !== "A") {
      e.preventDefault(); form.requestSubmit();
    }
  });
})();
