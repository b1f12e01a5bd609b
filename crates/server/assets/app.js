// Gantry's one script. Pages work without it; it adds: local times, live parts redrawn when the
// server says they changed, and the log viewer (ranges, follow, colours, search, permalinks).
// No inline script runs (the Content-Security-Policy forbids it); text is set with textContent.
"use strict";

(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // Times are written in UTC by the server; show them in the reader's zone.
  function localTimes(root) {
    for (const time of root.querySelectorAll("time[datetime]")) {
      const date = new Date(time.getAttribute("datetime"));
      if (!isNaN(date)) {
        time.title = time.textContent;
        time.textContent = date.toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
      }
    }
  }

  // A live part: `data-live-events` says when to fetch `data-live-part` again.
  function liveParts() {
    for (const part of document.querySelectorAll("[data-live-events][data-live-part]")) {
      let fetching = false, again = false;
      const redraw = async () => {
        if (fetching) { again = true; return; }
        fetching = true;
        try {
          const answer = await fetch(part.dataset.livePart, { credentials: "same-origin", headers: { "x-csrf-token": csrf() } });
          if (answer.ok) {
            const html = await answer.text();
            if (html !== part.dataset.liveHtml) {
              part.dataset.liveHtml = html;
              const focused = document.activeElement && part.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
              part.innerHTML = html;
              localTimes(part);
              if (focused) { const again = part.querySelector(`[href="${CSS.escape(focused)}"]`); if (again) again.focus(); }
              part.dispatchEvent(new CustomEvent("gantry:redrawn", { bubbles: true }));
            }
          }
        } catch (_) { /* the next change tries again */ }
        fetching = false;
        if (again) { again = false; redraw(); }
      };
      const events = new EventSource(part.dataset.liveEvents);
      events.addEventListener("changed", redraw);
      // After a lost connection the stream reconnects by itself; redraw what was missed.
      events.addEventListener("open", () => { if (part.dataset.liveSeen) redraw(); part.dataset.liveSeen = "1"; });
    }
  }

  // ANSI SGR colours to classes (and CSSOM colours for 256-colour and true-colour codes, which
  // the Content-Security-Policy allows, unlike style attributes).
  const PALETTE = [0, 95, 135, 175, 215, 255];
  function colour256(n) {
    if (n < 16) return null;
    if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
    n -= 16;
    return `rgb(${PALETTE[Math.floor(n / 36)]},${PALETTE[Math.floor(n / 6) % 6]},${PALETTE[n % 6]})`;
  }
  function applySgr(style, codes) {
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) { Object.assign(style, { b: false, i: false, u: false, dim: false, fg: null, bg: null, fgc: null, bgc: null }); }
      else if (c === 1) style.b = true; else if (c === 2) style.dim = true; else if (c === 3) style.i = true; else if (c === 4) style.u = true;
      else if (c === 22) { style.b = false; style.dim = false; } else if (c === 23) style.i = false; else if (c === 24) style.u = false;
      else if (c >= 30 && c <= 37) { style.fg = c - 30; style.fgc = null; } else if (c >= 90 && c <= 97) { style.fg = c - 82; style.fgc = null; }
      else if (c >= 40 && c <= 47) { style.bg = c - 40; style.bgc = null; } else if (c >= 100 && c <= 107) { style.bg = c - 92; style.bgc = null; }
      else if (c === 39) { style.fg = null; style.fgc = null; } else if (c === 49) { style.bg = null; style.bgc = null; }
      else if (c === 38 || c === 48) {
        let css = null, index = null;
        if (codes[i + 1] === 5) { const n = codes[i + 2] || 0; if (n < 16) index = n; else css = colour256(n); i += 2; }
        else if (codes[i + 1] === 2) { css = `rgb(${codes[i + 2] || 0},${codes[i + 3] || 0},${codes[i + 4] || 0})`; i += 4; }
        if (c === 38) { style.fg = index; style.fgc = css; } else { style.bg = index; style.bgc = css; }
      }
    }
  }
  // Appends `text` to `into` as spans, colours applied; other escape sequences are dropped, and
  // a carriage return keeps only what was drawn last (progress bars).
  function appendAnsi(into, text) {
    const cr = text.lastIndexOf("\r", text.length - 2);
    if (cr >= 0) text = text.slice(cr + 1);
    const style = {};
    const pattern = /\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]/g;
    let last = 0, match;
    const flush = (chunk) => {
      if (!chunk) return;
      const classes = [];
      if (style.b) classes.push("b"); if (style.i) classes.push("i"); if (style.u) classes.push("u"); if (style.dim) classes.push("dim");
      if (style.fg != null) classes.push("f" + style.fg); if (style.bg != null) classes.push("g" + style.bg);
      if (!classes.length && !style.fgc && !style.bgc) { into.appendChild(document.createTextNode(chunk)); return; }
      const span = document.createElement("span");
      span.className = classes.join(" ");
      if (style.fgc) span.style.color = style.fgc;
      if (style.bgc) span.style.backgroundColor = style.bgc;
      span.textContent = chunk;
      into.appendChild(span);
    };
    while ((match = pattern.exec(text)) !== null) {
      flush(text.slice(last, match.index));
      last = pattern.lastIndex;
      if (match[2] === "m") applySgr(style, (match[1] || "0").split(";").map((part) => parseInt(part || "0", 10)));
    }
    flush(text.slice(last).replace(/\r$/, ""));
  }

  // The log viewer: only the lines on screen are in the page; the rest are fetched by ranges
  // of CHUNK lines and kept, so a million-line log costs what a screenful costs.
  const CHUNK = 500;
  const MAX_CANVAS = 15000000; // pixels; browsers stop somewhere above 16 million
  function logViewer(section) {
    const stepId = section.dataset.stepId;
    const view = section.querySelector(".log-view");
    const count = section.querySelector("[data-log-count]");
    const tools = section.querySelector(".log-tools");
    const follow = section.querySelector('[data-log-action="follow"]');
    const matchesLabel = section.querySelector("[data-log-matches]");
    let total = parseInt(section.dataset.total, 10) || 0;
    let finished = section.dataset.finished === "true";
    const chunks = new Map(); // chunk index -> array of entries (may be partial at the end)
    const loading = new Set();
    let hits = [], hitIndex = -1, current = -1;

    // Keep what the server wrote as the first chunk, then draw our own way.
    const written = section.querySelector(".log-lines");
    if (written) written.remove();
    const rest = section.querySelector(".log-rest");
    if (rest) rest.hidden = true;
    tools.hidden = false;
    const canvas = document.createElement("div");
    canvas.className = "log-canvas";
    const windowEl = document.createElement("div");
    windowEl.className = "log-window";
    canvas.appendChild(windowEl);
    view.appendChild(canvas);
    const probe = document.createElement("span");
    probe.className = "line";
    probe.textContent = "x";
    windowEl.appendChild(probe);
    const lineHeight = probe.getBoundingClientRect().height || 20;
    probe.remove();

    const scale = () => Math.max(1, (total * lineHeight) / MAX_CANVAS);
    const resize = () => {
      canvas.style.height = Math.ceil((total * lineHeight) / scale()) + "px";
      count.textContent = total.toLocaleString() + " lines" + (finished ? "" : ", running");
    };
    const entryAt = (seq) => { const chunk = chunks.get(Math.floor(seq / CHUNK)); return chunk ? chunk[seq % CHUNK] : undefined; };

    async function load(index) {
      if (loading.has(index)) return;
      loading.add(index);
      try {
        const from = index * CHUNK;
        const answer = await fetch(`${section.dataset.linesUrl}&from=${from}&limit=${CHUNK}`, { credentials: "same-origin" });
        if (answer.ok) {
          const entries = (await answer.text()).split("\n").filter(Boolean).map((line) => JSON.parse(line));
          const chunk = chunks.get(index) || [];
          for (const entry of entries) chunk[entry.seq - from] = entry;
          chunks.set(index, chunk);
          const end = from + entries.length;
          if (end > total) { total = end; resize(); }
          draw();
        }
      } finally { loading.delete(index); }
    }

    function lineElement(seq) {
      const entry = entryAt(seq);
      const line = document.createElement("span");
      line.className = "line";
      line.id = `step-${stepId}-L${seq + 1}`;
      if (entry && entry.stream === "stderr") line.classList.add("stderr");
      if (seq === current) line.classList.add("current");
      else if (hitSet.has(seq)) line.classList.add("hit");
      const number = document.createElement("a");
      number.className = "ln";
      number.href = `#step-${stepId}-L${seq + 1}`;
      number.textContent = String(seq + 1);
      line.appendChild(number);
      const time = document.createElement("span");
      time.className = "ts";
      time.textContent = entry ? new Date(entry.at_ms).toLocaleTimeString([], { hour12: false }) : "";
      line.appendChild(time);
      if (entry) appendAnsi(line, entry.text); else line.appendChild(document.createTextNode("…"));
      return line;
    }

    let hitSet = new Set();
    let scheduled = false;
    function draw() {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(() => {
        scheduled = false;
        const exact = lineAtTop();
        const first = Math.max(0, Math.floor(exact));
        const visible = Math.ceil(view.clientHeight / lineHeight) + 2;
        const last = Math.min(total, first + visible);
        windowEl.style.top = (view.scrollTop - (exact - first) * lineHeight) + "px";
        const fragment = document.createDocumentFragment();
        for (let seq = first; seq < last; seq++) {
          if (!entryAt(seq)) load(Math.floor(seq / CHUNK));
          fragment.appendChild(lineElement(seq));
        }
        windowEl.replaceChildren(fragment);
      });
    }

    // Scrolling maps linearly onto the lines, so the last line is reachable even when the
    // canvas is shorter than the log (a scale above 1).
    const maxScroll = () => Math.max(0, canvas.offsetHeight - view.clientHeight);
    const maxFirst = () => Math.max(0, total - view.clientHeight / lineHeight);
    const lineAtTop = () => (maxScroll() > 0 ? (view.scrollTop / maxScroll()) * maxFirst() : 0);

    function goTo(seq, mark) {
      seq = Math.max(0, Math.min(seq, total - 1));
      if (mark) current = seq;
      const first = Math.max(0, seq - view.clientHeight / lineHeight / 3);
      view.scrollTop = maxFirst() > 0 ? (Math.min(first, maxFirst()) / maxFirst()) * maxScroll() : 0;
      draw();
    }
    const toBottom = () => { view.scrollTop = view.scrollHeight; draw(); };

    view.addEventListener("scroll", () => {
      draw();
      // Scrolling up stops following; reaching the bottom again resumes.
      const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - lineHeight * 2;
      if (!finished) follow.checked = atBottom;
    }, { passive: true });
    window.addEventListener("resize", draw);

    view.addEventListener("click", (event) => {
      const link = event.target.closest(".ln");
      if (!link) return;
      event.preventDefault();
      history.replaceState(null, "", link.getAttribute("href"));
      current = parseInt(link.textContent, 10) - 1;
      draw();
    });

    section.querySelector('[data-log-action="top"]').addEventListener("click", () => goTo(0, false));
    section.querySelector('[data-log-action="bottom"]').addEventListener("click", toBottom);
    follow.addEventListener("change", () => { if (follow.checked) toBottom(); });
    section.querySelector('[data-log-action="time"]').addEventListener("change", (event) => view.classList.toggle("with-time", event.target.checked));

    async function search(params) {
      const answer = await fetch(`${section.dataset.searchUrl}?${params}`, { credentials: "same-origin" });
      if (!answer.ok) return null;
      return answer.json();
    }
    section.querySelector('[data-log-action="error"]').addEventListener("click", async () => {
      const found = await search("errors=true&limit=1");
      if (found && found.lines.length) { follow.checked = false; goTo(found.lines[0], true); matchesLabel.textContent = `first error: line ${found.lines[0] + 1}`; }
      else matchesLabel.textContent = "no line looks like an error";
    });
    let lastQuery = "";
    section.querySelector(".log-search").addEventListener("submit", async (event) => {
      event.preventDefault();
      const query = section.querySelector("#log-query").value.trim();
      if (!query) { hits = []; hitSet = new Set(); matchesLabel.textContent = ""; draw(); return; }
      if (query !== lastQuery) {
        const found = await search(new URLSearchParams({ q: query, limit: "10000" }).toString());
        hits = found ? found.lines : [];
        hitSet = new Set(hits);
        hitIndex = -1;
        lastQuery = query;
        if (found && found.more) matchesLabel.dataset.more = "+"; else delete matchesLabel.dataset.more;
      }
      if (!hits.length) { matchesLabel.textContent = "no match"; draw(); return; }
      hitIndex = (hitIndex + 1) % hits.length;
      follow.checked = false;
      goTo(hits[hitIndex], true);
      matchesLabel.textContent = `${hitIndex + 1} of ${hits.length}${matchesLabel.dataset.more || ""}`;
    });
    document.addEventListener("keydown", (event) => {
      const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
      if (event.key === "/" && !typing) { event.preventDefault(); section.querySelector("#log-query").focus(); }
    });

    // Follow a running step: new lines arrive over the log's event stream.
    function stream() {
      const events = new EventSource(`${section.dataset.streamUrl}?from=${total}`);
      events.addEventListener("line", (event) => {
        const entry = JSON.parse(event.data);
        const index = Math.floor(entry.seq / CHUNK);
        const chunk = chunks.get(index) || [];
        chunk[entry.seq % CHUNK] = entry;
        chunks.set(index, chunk);
        if (entry.seq + 1 > total) { total = entry.seq + 1; resize(); }
        if (follow.checked) toBottom(); else draw();
      });
      events.addEventListener("end", () => {
        events.close();
        finished = true;
        section.dataset.finished = "true";
        resize();
        if (follow.checked) toBottom();
      });
    }

    resize();
    const permalink = location.hash.match(new RegExp(`^#step-${stepId}-L(\\d+)$`));
    if (permalink) {
      goTo(parseInt(permalink[1], 10) - 1, true);
    } else if (!finished) {
      follow.checked = true;
      toBottom();
    } else {
      draw();
    }
    if (!finished) stream();
    window.addEventListener("hashchange", () => {
      const again = location.hash.match(new RegExp(`^#step-${stepId}-L(\\d+)$`));
      if (again) goTo(parseInt(again[1], 10) - 1, true);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    liveParts();
    const log = document.getElementById("log");
    if (log && log.dataset.linesUrl) logViewer(log);
  });
})();
