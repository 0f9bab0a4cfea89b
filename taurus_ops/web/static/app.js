// taurus-ops serve: small, dependency-free enhancements. Every page works without it.
// Fragments come from this server (same origin) and are inserted as parsed HTML;
// session text in them is escaped on the server, and the page's CSP runs no inline script.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // -- "/" focuses the search box ------------------------------------------------------
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey) {
      const box = $("#quick-search");
      if (box) { event.preventDefault(); box.focus(); }
    }
  });

  // -- selects and checkboxes that apply at once ---------------------------------------
  $$("[data-autosubmit]").forEach((el) => {
    el.addEventListener("change", () => el.form && el.form.requestSubmit());
  });

  // -- copy buttons --------------------------------------------------------------------
  $$("button[data-copy]").forEach((button) => {
    button.addEventListener("click", async () => {
      const source = $(button.dataset.copy);
      if (!source) return;
      const text = source.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (error) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        document.execCommand && document.execCommand("copy");
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  });

  const transcript = $("#transcript");
  if (!transcript) return;
  const body = document.body;

  // -- fragments ----------------------------------------------------------------------
  function parse(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  }

  async function fetchFragment(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
    if (!response.ok) throw new Error(response.status + " " + response.statusText);
    return parse(await response.text());
  }

  function openDetailsIds(root) {
    return new Set($$("details[open]", root).map((d) => d.id).filter(Boolean));
  }

  function reopen(root, ids) {
    ids.forEach((id) => { const d = document.getElementById(id); if (d && root.contains(d)) d.open = true; });
  }

  async function loadLink(link) {
    if (link.classList.contains("loading")) return;
    link.classList.add("loading");
    try {
      const fragment = await fetchFragment(link.dataset.src);
      if (link.classList.contains("earlier")) {
        const before = document.documentElement.scrollHeight;
        link.replaceWith(fragment);
        window.scrollBy(0, document.documentElement.scrollHeight - before);
      } else {
        link.replaceWith(fragment);
      }
      watch();
    } catch (error) {
      link.classList.remove("loading");
      link.textContent = "Could not load (" + error.message + "): click to try again";
    }
  }

  // Load the next chunk when the "more" link comes near the screen; "earlier" on click.
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
        entries.forEach((entry) => { if (entry.isIntersecting) loadLink(entry.target); });
      }, { rootMargin: "800px 0px" })
    : null;

  function watch() {
    $$("a.more[data-src], a.earlier[data-src]", transcript).forEach((link) => {
      if (link.dataset.watched) return;
      link.dataset.watched = "1";
      link.addEventListener("click", (event) => { event.preventDefault(); loadLink(link); });
      if (observer && link.classList.contains("more")) observer.observe(link);
    });
  }
  watch();

  // -- expand / collapse every tool call --------------------------------------------------
  $$("[data-expand]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => {
      const open = button.dataset.expand === "open";
      $$("details.tool, details.thinking", transcript).forEach((d) => { d.open = open; });
    });
  });

  // -- the message a link points at: open what hides it, mark it, highlight the terms -----
  function terms() {
    const raw = body.dataset.terms || "";
    const found = raw.match(/"[^"]+"|\S+/g) || [];
    return found.map((t) => t.replace(/^"|"$/g, "")).filter((t) => t.length > 0);
  }

  function highlight(root, words) {
    if (!words.length) return;
    const lower = words.map((w) => w.toLowerCase());
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach((node) => {
      let text = node.nodeValue;
      let hay = text.toLowerCase();
      let at = -1, word = "";
      lower.forEach((w) => {
        const i = hay.indexOf(w);
        if (i !== -1 && (at === -1 || i < at)) { at = i; word = w; }
      });
      if (at === -1) return;
      const match = node.splitText(at);
      match.splitText(word.length);
      const mark = document.createElement("mark");
      mark.className = "hit-mark";
      mark.textContent = match.nodeValue;
      match.replaceWith(mark);
    });
  }

  function reveal(id) {
    const target = id && document.getElementById(id);
    if (!target) return;
    for (let el = target; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") el.open = true;
    }
    const message = target.closest(".msg") || target;
    $$(".msg.target").forEach((m) => m.classList.remove("target"));
    message.classList.add("target");
    highlight(target.closest("details") || message, terms());
    target.scrollIntoView({ block: "start" });
  }

  const initial = (location.hash || "").slice(1) || body.dataset.target;
  if (initial) reveal(initial);
  window.addEventListener("hashchange", () => reveal(location.hash.slice(1)));

  // -- live: a running chat's new messages appear -----------------------------------------
  const banner = $(".new-messages");
  const live = $(".live");

  async function refreshLast() {
    const chunks = $$("section.chunk", transcript);
    const last = chunks[chunks.length - 1];
    if (!last) return;
    const pending = $("a.more", transcript);
    if (pending) {  // the reader has not reached the end: offer, do not jump
      banner.hidden = false;
      return;
    }
    const keep = openDetailsIds(last);
    const fragment = await fetchFragment(body.dataset.base + "/turns?from=" + last.dataset.from);
    const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
    last.replaceWith(fragment);
    reopen(transcript, keep);
    watch();
    if (atBottom) window.scrollTo(0, document.documentElement.scrollHeight);
  }

  if (banner) {
    $("button", banner).addEventListener("click", () => {
      location.href = body.dataset.base + "?at=last#end";
    });
  }

  if (body.dataset.events && "EventSource" in window) {
    const source = new EventSource(body.dataset.events);
    source.addEventListener("open", () => { if (live) live.hidden = false; });
    source.addEventListener("error", () => { if (live) live.hidden = true; });
    source.addEventListener("change", () => { refreshLast().catch(() => { banner.hidden = false; }); });
    source.addEventListener("gone", () => {
      source.close();
      if (live) { live.hidden = false; live.textContent = "● the file has moved or been removed"; }
    });
    window.addEventListener("pagehide", () => source.close());
  }
})();
