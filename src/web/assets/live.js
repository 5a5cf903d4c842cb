// Follows the page's update stream and swaps in the new content. No framework: the server renders
// the HTML, this only places it. Without JavaScript the page still works (reload to refresh).
"use strict";
(function () {
  const main = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!main || !main.dataset.events || !window.EventSource) return;
  const say = (text, state) => {
    status.textContent = text;
    status.dataset.state = state;
  };
  let updates = 0;
  let waiting = null;
  const place = (html) => {
    main.innerHTML = html;
    updates += 1;
    document.body.dataset.updates = String(updates);
    say("live · updated " + new Date().toLocaleTimeString(), "live");
  };
  // Someone choosing in a form (the diff selectors) keeps their choice until they leave it.
  const choosing = () => {
    const el = document.activeElement;
    return el && main.contains(el) && el.closest("form") !== null;
  };
  main.addEventListener("focusout", () => {
    if (waiting !== null) {
      const html = waiting;
      waiting = null;
      setTimeout(() => (choosing() ? (waiting = html) : place(html)), 0);
    }
  });
  const source = new EventSource(main.dataset.events);
  source.addEventListener("page", (e) => (choosing() ? (waiting = e.data) : place(e.data)));
  source.addEventListener("open", () => say("live", "live"));
  source.addEventListener("error", () => say("reconnecting…", "lost"));
})();
