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

// Steps, or before them what the run is doing (the server's metadata.phase): the base
// model's one-time preparation fills the bar with its own progress.
export function progressBar(op) {
  const meta = op?.metadata || {};
  const total = meta.totalSteps || 0;
  const done = meta.completedSteps || 0;
  const phase = op && !op.done ? meta.phase : null;
  let pct = total ? Math.round((100 * done) / total) : 0;
  let text = `${done}/${total} steps`;
  if (phase?.name === "PREPARING_BASE_MODEL") {
    pct = phase.progress == null ? 0 : Math.round(100 * phase.progress);
    text = phase.progress == null ? phase.description : `${phase.description} ${pct}%`;
  } else if (phase && phase.name !== "TUNING") {
    text = `${phase.description} · ${text}`;
  }
  return h("div", { class: "progress", title: text, dataset: { phase: phase?.name || "" } },
    h("div", { class: "progress-track" }, h("div", { class: "progress-fill", style: `width:${pct}%` })),
    h("span", { class: "progress-text" }, text));
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
