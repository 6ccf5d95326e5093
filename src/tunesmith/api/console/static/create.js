// A new tuning: upload or paste examples, preview them, pick a base model and the
// hyperparameters, and show what the server says is wrong, field by field and row by row.

import { get, post } from "./api.js";
import { fill, h, idOf } from "./dom.js";
import { kindOf, parseRecords, toExamples } from "./data.js";

const PREVIEW_ROWS = 5;
// Which form field a server message is about (its messages start with the field's name).
const FIELDS = {
  tuned_model_id: "id", display_name: "display-name", epoch_count: "epochs", batch_size: "batch-size",
  learning_rate: "learning-rate", source_model: "base-model", base_model: "base-model",
};

function input(id, attrs = {}) {
  return h("input", { id, name: id, ...attrs });
}

function labelled(text, control, help) {
  return h("label", { for: control.id }, text, control, help ? h("span", { class: "help" }, help) : null,
    h("span", { class: "field-error", id: `${control.id}-error`, hidden: true }));
}

export async function createView(root, ctx) {
  const file = input("file", { type: "file", accept: ".csv,.json,.jsonl,.ndjson,text/csv,application/json" });
  const paste = h("textarea", { id: "paste", rows: 5, spellcheck: false,
    placeholder: "…or paste examples: CSV with a header row, JSON, or JSONL (text_input/output, Vertex contents or OpenAI messages rows)\ntext_input,output\n1,2" });
  const inputKey = input("input-key", { value: "text_input" });
  const outputKey = input("output-key", { value: "output" });
  const baseModel = input("base-model", { list: "base-models", autocomplete: "off", required: true,
    placeholder: "models/…" });
  const models = h("datalist", { id: "base-models" });
  const id = input("id", { placeholder: "optional: from the name", pattern: "[a-z]([a-z0-9-]{0,38}[a-z0-9])?" });
  const displayName = input("display-name", { placeholder: "number generator" });
  const epochs = input("epochs", { type: "number", min: 1, step: 1, placeholder: "5" });
  const batchSize = input("batch-size", { type: "number", min: 1, step: 1, placeholder: "4" });
  const learningRate = input("learning-rate", { type: "number", min: 0, step: "any", placeholder: "0.002" });
  const preview = h("div", { class: "preview", id: "preview" },
    h("p", { class: "muted" }, "Choose a file or paste examples to see them here."));
  const errorBox = h("div", { class: "error-box", id: "form-error", role: "alert", hidden: true });
  const submit = h("button", { class: "primary", type: "submit", id: "start" }, "Start tuning");
  let parsed = null;  // {rows, examples, kind, source}
  let serverRow = 0;  // the row the server's last answer named

  async function readData() {
    const f = file.files[0];
    const text = f ? await f.text() : paste.value;
    if (!text.trim()) return null;
    const kind = kindOf(f ? f.name : "", text);
    const records = parseRecords(text, kind);
    return { ...toExamples(records, inputKey.value.trim(), outputKey.value.trim()), kind, source: f ? f.name : "pasted text" };
  }

  async function update() {
    try {
      parsed = await readData();
    } catch (e) {
      parsed = null;
      fill(preview, h("p", { class: "error" }, `Cannot read the ${file.files[0] ? "file" : "text"}: ${e.message}`));
      return;
    }
    if (!parsed) {
      fill(preview, h("p", { class: "muted" }, "Choose a file or paste examples to see them here."));
      return;
    }
    renderPreview();
  }

  function renderPreview() {
    const { rows, kind, source } = parsed;
    const flagged = rows.filter((r) => r.problem);
    const shown = rows.slice(0, PREVIEW_ROWS);
    const extra = [...flagged, ...rows.filter((r) => r.row === serverRow)].filter((r) => r.row > PREVIEW_ROWS);
    const seen = new Set();
    const show = [...shown, ...extra].filter((r) => !seen.has(r.row) && seen.add(r.row));
    const cell = (v) => (v === undefined ? h("em", { class: "muted" }, "missing") : typeof v === "string" ? v : JSON.stringify(v));
    const turns = (r) => h("td", { colspan: 2, class: "turns" }, r.turns.map((t) =>
      h("div", { class: `turn turn-${t.role}` }, h("b", {}, `${t.role}${t.weight === 0 ? " (not learned)" : ""}: `), cell(t.text))));
    fill(preview, 
      h("p", { class: "small" }, h("b", {}, `${rows.length} ${parsed.conversations ? "conversation" : "example"}${rows.length === 1 ? "" : "s"}`),
        ` from ${source} (${kind.toUpperCase()})`,
        flagged.length ? h("span", { class: "warn" }, ` · ${flagged.length} row${flagged.length === 1 ? "" : "s"} look wrong`) : " · looks fine"),
      h("table", { class: "preview-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "row"), h("th", {}, inputKey.value), h("th", {}, outputKey.value), h("th", {}, ""))),
        h("tbody", {}, show.map((r) => h("tr", { class: r.problem || r.row === serverRow ? "bad" : "", dataset: { row: r.row } },
          h("td", { class: "muted" }, r.row), ...(r.turns ? [turns(r)] : [h("td", {}, cell(r.input)), h("td", {}, cell(r.output))]),
          h("td", { class: "problem" }, r.problem))))),
      rows.length > show.length ? h("p", { class: "muted small" }, `…and ${rows.length - show.length} more`) : null);
  }

  function clearErrors() {
    errorBox.hidden = true;
    serverRow = 0;
    for (const el of root.querySelectorAll(".field-error")) el.hidden = true;
    for (const el of root.querySelectorAll(".invalid")) el.classList.remove("invalid");
  }

  function showServerError(message) {
    const parts = message.split("; ");
    const general = [];
    for (const part of parts) {
      const target = FIELDS[part.split(":")[0].trim()];
      const el = target && document.getElementById(`${target}-error`);
      if (el) {
        el.textContent = part;
        el.hidden = false;
        document.getElementById(target).classList.add("invalid");
      } else general.push(part);
    }
    const row = /training_data (?:row|line) (\d+)/.exec(message);
    if (row && parsed) {
      serverRow = Number(row[1]);
      renderPreview();
    }
    if (general.length) {
      fill(errorBox, h("b", {}, "The server refused this tuning: "), general.join("; "));
      errorBox.hidden = false;
    }
  }

  async function start(ev) {
    ev.preventDefault();
    clearErrors();
    try {
      parsed = parsed || (await readData());
    } catch (e) {
      fill(errorBox, e.message);
      errorBox.hidden = false;
      return;
    }
    if (!parsed) {
      fill(errorBox, "Add training examples: choose a file or paste them.");
      errorBox.hidden = false;
      return;
    }
    const hyperparameters = {};
    if (epochs.value) hyperparameters.epochCount = Number(epochs.value);
    if (batchSize.value) hyperparameters.batchSize = Number(batchSize.value);
    if (learningRate.value) hyperparameters.learningRate = Number(learningRate.value);
    const body = {
      baseModel: baseModel.value.trim(),
      tuningTask: { hyperparameters, trainingData: parsed.conversations
        ? { conversations: parsed.conversations } : { examples: { examples: parsed.examples } } },
    };
    if (displayName.value.trim()) body.displayName = displayName.value.trim();
    const query = id.value.trim() ? `?tunedModelId=${encodeURIComponent(id.value.trim())}` : "";
    submit.disabled = true;
    submit.textContent = "Starting…";
    try {
      const op = await post(`tunedModels${query}`, body);
      location.hash = `#/models/${idOf(op.metadata.tunedModel)}`;
    } catch (e) {
      showServerError(e.message);
    } finally {
      submit.disabled = false;
      submit.textContent = "Start tuning";
    }
  }

  file.addEventListener("change", () => { paste.value = ""; clearErrors(); update(); });
  paste.addEventListener("input", () => { if (file.value) file.value = ""; clearErrors(); update(); });
  for (const el of [inputKey, outputKey]) el.addEventListener("change", update);

  fill(root, 
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Tuned models")),
    h("h1", {}, "New tuning"),
    h("form", { class: "create", onsubmit: start, novalidate: true },
      h("section", { class: "card" }, h("h2", {}, "1. Training examples"),
        labelled("Upload a CSV, JSON or JSONL file", file),
        paste,
        h("div", { class: "row2" },
          labelled("Input column / key", inputKey),
          labelled("Output column / key", outputKey)),
        preview),
      h("section", { class: "card" }, h("h2", {}, "2. Model and hyperparameters"),
        labelled("Base model", baseModel, "A listed model, a local model folder or .gguf file on the server, or tunedModels/ID to continue tuning."),
        models,
        h("div", { class: "row2" },
          labelled("Display name", displayName),
          labelled("Id", id)),
        h("div", { class: "row3" },
          labelled("Epochs", epochs),
          labelled("Batch size", batchSize),
          labelled("Learning rate", learningRate)),
        h("p", { class: "muted small" }, "Empty fields take the server's defaults (5 epochs, batch size 4).")),
      errorBox,
      h("div", { class: "form-actions" }, submit)));

  try {
    const list = (await get("models")).models || [];
    if (!ctx.alive()) return;
    fill(models, ...list.map((m) => h("option", { value: m.name }, m.displayName || m.name)));
    if (!baseModel.value && list.length) baseModel.value = list[0].name;
  } catch (e) {
    fill(errorBox, `Cannot list base models: ${e.message}`);
    errorBox.hidden = false;
  }
}
