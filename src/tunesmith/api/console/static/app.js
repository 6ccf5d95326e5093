// The console's router: #/ (tuned models), #/new (a new tuning), #/models/ID (one model).
// Each view gets a context whose timers stop when the user navigates away.

import { apiKey } from "./api.js";
import { createView } from "./create.js";
import { fill, h } from "./dom.js";
import { listView } from "./list.js";
import { modelView } from "./model.js";

const root = document.getElementById("view");
let current = null;

function context() {
  const timers = new Set();
  const ctx = {
    live: true,
    alive: () => ctx.live,
    refreshIn(ms, fn) {
      if (!ctx.live) return;
      const t = setTimeout(async () => {
        timers.delete(t);
        if (!ctx.live) return;
        try {
          await fn();
        } catch (e) {
          showError(e, ctx);
        }
      }, ms);
      timers.add(t);
    },
    stop() {
      ctx.live = false;
      timers.forEach(clearTimeout);
    },
  };
  return ctx;
}

function showError(e, ctx) {
  if (!ctx.alive()) return;
  const retry = h("button", { class: "ghost", type: "button", onclick: route }, "Try again");
  const auth = e.httpStatus === 401;
  fill(root, h("section", { class: "card error-card" },
    h("h2", {}, e.status === "NOT_FOUND" ? "Not found" : auth ? "An API key is needed" : "Something went wrong"),
    h("p", {}, e.message),
    h("div", { class: "form-actions" },
      auth ? h("button", { class: "primary", type: "button", onclick: openKeyDialog }, "Enter API key") : null,
      e.status === "NOT_FOUND" ? h("a", { class: "button", href: "#/" }, "All models") : retry)));
}

async function route() {
  current?.stop();
  const ctx = (current = context());
  const hash = location.hash || "#/";
  const match = /^#\/models\/([^/?#]+)/.exec(hash);
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", (a.dataset.nav === "new") === (hash === "#/new") && !match);
  }
  try {
    if (hash === "#/new") await createView(root, ctx);
    else if (match) await modelView(root, ctx, decodeURIComponent(match[1]));
    else await listView(root, ctx);
  } catch (e) {
    showError(e, ctx);
  }
  window.scrollTo?.(0, 0);
}

// -- the API key, entered once and kept in localStorage ------------------------------------

const dialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyMessage = document.getElementById("key-message");

function showKeyState() {
  document.getElementById("key-state").textContent = apiKey.get() ? "set" : "none";
}

function openKeyDialog(message) {
  keyMessage.textContent = typeof message === "string" ? message : "";
  keyMessage.hidden = typeof message !== "string";
  // A page's requests fail together (each answers 401): only the first opens the dialog, the
  // others must not reset what the user has begun to type.
  if (dialog.open) return;
  keyInput.value = apiKey.get();
  dialog.showModal();
  keyInput.focus();
}

dialog.addEventListener("close", () => {
  if (dialog.returnValue === "save" && keyInput.value.trim()) apiKey.set(keyInput.value.trim());
  else if (dialog.returnValue === "forget") apiKey.clear();
  else return;
  showKeyState();
  route();
});

document.getElementById("key-button").addEventListener("click", () => openKeyDialog());
window.addEventListener("tunesmith:unauthenticated", (ev) => openKeyDialog(ev.detail.message));
window.addEventListener("hashchange", route);
showKeyState();
route();
