// One tuned model: live progress and loss curve, hyperparameters, timings, a generation
// playground, and cancel / delete behind a confirmation.

import { del, get, post } from "./api.js";
import { lossChart } from "./chart.js";
import { confirmAction, duration, fill, h, toast, when } from "./dom.js";
import { downloadMenu } from "./download.js";
import { badge, progressBar, stateOf } from "./list.js";

function latest(ops) {
  const running = ops.filter((op) => !op.done);
  return (running.length ? running : ops).at(-1);
}

function field(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? "—")];
}

function seconds(a, b) {
  return a && b ? (new Date(b) - new Date(a)) / 1000 : null;
}

function eta(op) {
  const snaps = op?.metadata?.snapshots || [];
  if (op?.done || snaps.length < 2) return null;
  const first = snaps[0], last = snaps.at(-1);
  const per = seconds(first.computeTime, last.computeTime) / (last.step - first.step || 1);
  return per * ((op.metadata.totalSteps || 0) - (op.metadata.completedSteps || 0));
}

export async function modelView(root, ctx, id) {
  const name = `tunedModels/${id}`;
  const status = h("div", { class: "status" });
  const chartBox = h("div", { class: "chart-box" });
  const details = h("dl", { class: "details" });
  const actions = h("div", { class: "actions" });
  const download = downloadMenu(id);
  download.hidden = true;  // until the model is ACTIVE
  const title = h("h1", {}, id);
  const playground = playgroundCard(id);
  fill(root, 
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Tuned models")),
    h("div", { class: "page-head" }, h("div", {}, title, h("div", { class: "muted small mono" }, name)), actions, download),
    h("section", { class: "card" }, h("h2", {}, "Training"), status, chartBox),
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Details"), details),
      playground.card));

  async function refresh() {
    const [model, ops] = await Promise.all([get(name), get(`${name}/operations`)]);
    if (!ctx.alive()) return;
    const op = latest(ops.operations || []);
    const state = stateOf(model, op);
    const meta = op?.metadata || {};
    const task = model.tuningTask || {};
    const hp = task.hyperparameters || {};
    title.textContent = model.displayName || id;
    const snaps = meta.snapshots?.length ? meta.snapshots : task.snapshots || [];
    const lastLoss = snaps.length ? Number(snaps.at(-1).meanLoss).toFixed(4) : "—";
    fill(status, 
      h("div", { class: "status-row" }, badge(state), progressBar(op),
        h("span", { class: "stat" }, "loss ", h("b", { class: "loss-value" }, lastLoss)),
        h("span", { class: "stat" }, "elapsed ", h("b", {}, duration(seconds(task.startTime, task.completeTime || (op && !op.done ? new Date().toISOString() : null))))),
        op && !op.done ? h("span", { class: "stat" }, "ETA ", h("b", {}, duration(eta(op)))) : null),
      op?.error ? h("p", { class: op.error.code === 1 ? "notice" : "error" },
        op.error.code === 1 ? "The tuning was cancelled." : `The tuning failed: ${op.error.message}`) : null);
    fill(chartBox, lossChart(snaps, op?.done ? 0 : meta.totalSteps));  // a stopped run: its steps
    fill(details, 
      ...field("Base model", model.baseModel),
      ...(model.tunedModelSource ? field("Tuned from", model.tunedModelSource.tunedModel) : []),
      ...field("Epochs", hp.epochCount),
      ...field("Batch size", hp.batchSize),
      ...field("Learning rate", hp.learningRate),
      ...field("Steps", meta.totalSteps),
      ...field("Temperature", model.temperature),
      ...field("Created", when(model.createTime)),
      ...field("Started", when(task.startTime)),
      ...field("Completed", when(task.completeTime)),
      ...field("Took", duration(seconds(task.startTime, task.completeTime))),
      ...(model.description ? field("Description", model.description) : []),
      ...(op ? field("Operation", h("span", { class: "mono small" }, op.name)) : []));
    fill(actions, 
      op && !op.done ? h("button", { class: "ghost", type: "button", onclick: () => cancel(op) }, "Cancel tuning") : null,
      h("button", { class: "danger", type: "button", onclick: remove }, "Delete"));
    playground.setReady(model.state === "ACTIVE", model.temperature);
    download.hidden = model.state !== "ACTIVE";
    // The two reads run side by side: a run that ends between them leaves a CREATING model
    // beside a done operation, so read again until the model says it is done too.
    if ((op && !op.done) || model.state === "CREATING") ctx.refreshIn(1000, refresh);
  }

  async function cancel(op) {
    if (!(await confirmAction("Cancel this tuning?", `${name} stops at its next step and is marked as cancelled. This cannot be undone.`, "Cancel tuning"))) return;
    try {
      await post(`${op.name}:cancel`);
      toast("Cancelling…");
      await refresh();
    } catch (e) {
      toast(e.message, "error");
    }
  }

  async function remove() {
    if (!(await confirmAction("Delete this model?", `${name}, its operation and its weights are deleted for good.`, "Delete"))) return;
    try {
      await del(name);
      toast(`Deleted ${id}`);
      location.hash = "#/";
    } catch (e) {
      toast(e.message, "error");
    }
  }

  await refresh();
}

function playgroundCard(id) {
  const prompt = h("textarea", { id: "prompt", rows: 3, placeholder: "Type a prompt…" });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: "0.7" });
  const candidates = h("input", { id: "candidates", type: "number", min: 1, max: 8, step: 1, value: "1" });
  const maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, max: 2048, step: 1, value: "64" });
  const button = h("button", { class: "primary", type: "submit", id: "generate" }, "Generate");
  const output = h("div", { class: "outputs", id: "outputs" });
  // A conversation: the system instruction and every turn go with each message (generateContent).
  const system = h("input", { id: "system-instruction", placeholder: "optional: a persona, rules…" });
  const keep = h("input", { id: "keep-chat", type: "checkbox" });
  const log = h("div", { class: "chat-log", id: "chat-log" });
  const restart = h("button", { type: "button", id: "new-chat", hidden: true }, "New conversation");
  let history = [];
  function showLog() {
    fill(log, ...history.map((c) => h("div", { class: `turn turn-${c.role}` },
      h("b", {}, `${c.role}: `), c.parts[0].text === "" ? "(empty)" : c.parts[0].text)));
    restart.hidden = !history.length;
  }
  restart.addEventListener("click", () => { history = []; showLog(); });
  keep.addEventListener("change", () => { if (!keep.checked) { history = []; showLog(); } });
  const hint = h("p", { class: "muted small" }, "The playground opens when the model is ACTIVE.");
  let touched = false;
  temperature.addEventListener("input", () => (touched = true));

  async function run(ev) {
    ev.preventDefault();
    button.disabled = true;
    button.textContent = "Generating…";
    fill(output, h("p", { class: "muted" }, "Generating…"));
    try {
      const config = {};
      if (temperature.value !== "") config.temperature = Number(temperature.value);
      if (candidates.value !== "") config.candidateCount = Number(candidates.value);
      if (maxTokens.value !== "") config.maxOutputTokens = Number(maxTokens.value);
      const started = performance.now();
      let cands;
      if (keep.checked || system.value.trim()) {
        const asked = { role: "user", parts: [{ text: prompt.value }] };
        const body = { contents: [...history, asked], generationConfig: config };
        if (system.value.trim()) body.systemInstruction = { parts: [{ text: system.value.trim() }] };
        const answer = await post(`tunedModels/${id}:generateContent`, body);
        cands = (answer.candidates || []).map((c) => ({
          output: ((c.content && c.content.parts) || []).map((p) => p.text || "").join("") }));
        if (keep.checked && cands.length) {
          history = [...history, asked, { role: "model", parts: [{ text: cands[0].output }] }];
          showLog();
          prompt.value = "";
        }
      } else {
        const answer = await post(`tunedModels/${id}:generateText`, { prompt: { text: prompt.value }, ...config });
        cands = answer.candidates || [];
      }
      const took = ((performance.now() - started) / 1000).toFixed(1);
      fill(output, 
        ...cands.map((c, i) => h("div", { class: "candidate" },
          cands.length > 1 ? h("div", { class: "muted small" }, `candidate ${i + 1}`) : null,
          h("pre", {}, c.output === "" ? "(empty)" : c.output))),
        h("p", { class: "muted small" }, `${cands.length} candidate${cands.length === 1 ? "" : "s"} in ${took} s`));
    } catch (e) {
      fill(output, h("p", { class: "error" }, e.message));
    } finally {
      button.disabled = false;
      button.textContent = "Generate";
    }
  }

  const form = h("form", { class: "playground", onsubmit: run },
    h("label", {}, "System instruction", system),
    log,
    h("label", {}, "Prompt", prompt),
    h("label", { class: "inline" }, keep, " Keep the conversation (each message sends the turns so far)"),
    h("div", { class: "row3" },
      h("label", {}, "Temperature", temperature),
      h("label", {}, "Candidates", candidates),
      h("label", {}, "Max tokens", maxTokens)),
    h("div", { class: "form-actions" }, restart, button),
    output);
  const card = h("section", { class: "card" }, h("h2", {}, "Playground"), hint, form);
  return {
    card,
    setReady(ready, modelTemperature) {
      for (const el of form.elements) el.disabled = !ready;
      hint.hidden = ready;
      if (!touched && modelTemperature !== undefined) temperature.value = String(modelTemperature);
    },
  };
}
