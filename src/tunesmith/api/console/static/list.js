// The tuned models: state and progress, refreshed while any of them is tuning.

import { latestOperations, listAll } from "./api.js";
import { fill, h, idOf, when } from "./dom.js";

export function stateOf(model, op) {
  if (op?.error?.code === 1) return "CANCELLED";
  return model?.state || (op?.done ? (op.error ? "FAILED" : "ACTIVE") : "CREATING");
}

export function badge(state) {
  return h("span", { class: `badge ${state.toLowerCase()}` }, state);
}

export function progressBar(op) {
  const meta = op?.metadata || {};
  const total = meta.totalSteps || 0;
  const done = meta.completedSteps || 0;
  const pct = total ? Math.round((100 * done) / total) : 0;
  return h("div", { class: "progress", title: `${done} of ${total} steps` },
    h("div", { class: "progress-track" }, h("div", { class: "progress-fill", style: `width:${pct}%` })),
    h("span", { class: "progress-text" }, `${done}/${total} steps`));
}

export async function listView(root, ctx) {
  const [models, ops] = await Promise.all([listAll("tunedModels", "tunedModels"), latestOperations()]);
  if (!ctx.alive()) return;
  const body = h("tbody");
  for (const m of models) {
    const op = ops.get(m.name);
    const state = stateOf(m, op);
    const href = `#/models/${idOf(m.name)}`;
    body.append(h("tr", { dataset: { model: idOf(m.name) } },
      h("td", { "data-label": "Model" },
        h("a", { href, class: "model-link" }, m.displayName || idOf(m.name)),
        h("div", { class: "muted small" }, idOf(m.name))),
      h("td", { "data-label": "State" }, badge(state)),
      h("td", { "data-label": "Progress" }, progressBar(op)),
      h("td", { "data-label": "Base model", class: "small" }, m.baseModel || m.tunedModelSource?.tunedModel || ""),
      h("td", { "data-label": "Created", class: "small" }, when(m.createTime))));
  }
  fill(root, 
    h("div", { class: "page-head" },
      h("h1", {}, "Tuned models"),
      h("a", { href: "#/new", class: "button primary" }, "New tuning")),
    models.length
      ? h("table", { class: "models" },
          h("thead", {}, h("tr", {}, ["Model", "State", "Progress", "Base model", "Created"].map((t) => h("th", {}, t)))),
          body)
      : h("div", { class: "empty-state card" },
          h("p", {}, "No tuned models yet."),
          h("p", { class: "muted" }, "Upload a CSV, JSON or JSONL file of examples to tune your first one."),
          h("a", { href: "#/new", class: "button primary" }, "Tune a model")));
  const tuning = models.some((m) => stateOf(m, ops.get(m.name)) === "CREATING");
  ctx.refreshIn(tuning ? 1500 : 10000, () => listView(root, ctx));
}
