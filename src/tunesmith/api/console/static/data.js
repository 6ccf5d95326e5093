// Training data in the browser: parse an uploaded or pasted CSV, JSON or JSONL text into
// rows for the preview, and the examples to send. The checks here only annotate the preview;
// the server is the one that decides (its 400 names the row).

export function kindOf(name, text) {
  const lower = (name || "").toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".csv")) return "csv";
  const t = text.trimStart();
  if (t.startsWith("[")) return "json";
  if (t.startsWith("{")) {
    const firstLine = t.split("\n", 1)[0].trim();
    try {
      JSON.parse(firstLine);
      return t.includes("\n") ? "jsonl" : "json";
    } catch {
      return "json";
    }
  }
  return "csv";
}

// RFC 4180: quoted fields, doubled quotes, newlines inside quotes.
export function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  const nonEmpty = rows.filter((r) => !(r.length === 1 && r[0] === ""));
  if (!nonEmpty.length) throw new Error("the CSV file is empty");
  const [header, ...body] = nonEmpty;
  return body.map((r) => Object.fromEntries(header.map((name, i) => [name.trim(), r[i]])));
}

// The records (objects) of a file; a parse error names the line.
export function parseRecords(text, kind) {
  text = text.replace(/^\uFEFF/, "");
  if (kind === "csv") return parseCsv(text);
  if (kind === "jsonl") {
    const out = [];
    text.split(/\r?\n/).forEach((line, i) => {
      if (!line.trim()) return;
      try {
        out.push(JSON.parse(line));
      } catch {
        throw new Error(`line ${i + 1}: not valid JSON`);
      }
    });
    return out;
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`not valid JSON (${e.message})`);
  }
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object") {
    let inner = value.examples;
    if (inner && !Array.isArray(inner) && Array.isArray(inner.examples)) inner = inner.examples;
    if (Array.isArray(inner)) return inner;
    const keys = Object.keys(value);
    if (keys.length && keys.every((k) => Array.isArray(value[k]))) {
      const n = Math.max(...keys.map((k) => value[k].length));
      return Array.from({ length: n }, (_, i) => Object.fromEntries(keys.map((k) => [k, value[k][i]])));
    }
  }
  throw new Error("expected a list of examples, {\"examples\": [...]}, or columns");
}

function pick(record, key) {
  if (Array.isArray(record)) return key === 0 ? record[0] : record[1];
  if (!record || typeof record !== "object") return undefined;
  if (key in record) return record[key];
  const camel = key.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  return record[camel];
}

// A conversation row: Vertex's {"contents", "systemInstruction"} or OpenAI's {"messages"}.
export function isConversation(record, inputKey) {
  return !!record && typeof record === "object" && !Array.isArray(record) && !(inputKey in record)
    && ("contents" in record || "messages" in record);
}

function partsText(content) {
  if (typeof content === "string") return content;
  const parts = content && (Array.isArray(content) ? content : content.parts);
  if (!Array.isArray(parts)) return undefined;
  return parts.map((p) => (p && typeof p.text === "string" ? p.text : "")).join("");
}

// The turns of a conversation row for the preview: [{role, text}], the system instruction first.
export function turnsOf(record) {
  const turns = [];
  if (Array.isArray(record.messages)) {
    for (const m of record.messages) {
      const role = m && m.role === "assistant" ? "model" : m && m.role;
      turns.push({ role, text: partsText(m && m.content), weight: m && m.weight });
    }
    return turns;
  }
  const system = record.systemInstruction || record.system_instruction;
  if (system) turns.push({ role: "system", text: partsText(system) });
  for (const c of Array.isArray(record.contents) ? record.contents : []) {
    turns.push({ role: (c && c.role) || "user", text: partsText(c), weight: c && c.weight });
  }
  return turns;
}

// What the preview notes on a conversation (the server's rules decide; this only flags).
function conversationProblem(turns) {
  const said = turns.filter((t) => t.role !== "system");
  if (!said.length) return "no turns";
  for (const [i, t] of said.entries()) {
    if (t.role !== "user" && t.role !== "model") return `turn ${i + 1}: unknown role '${t.role}'`;
    if (typeof t.text !== "string" || !t.text.trim()) return `turn ${i + 1}: no text`;
    if (i && t.role === "model" && said[i - 1].role === "model") return `turn ${i + 1}: two model turns in a row`;
  }
  if (said[said.length - 1].role !== "model") return "ends on a user turn";
  return "";
}

// Rows for the preview (with a note on rows that look wrong) and the examples to send: Google's
// examples, or (when any row is a conversation) every row as a conversation, in order, for
// tunesmith's trainingData.conversations.
export function toExamples(records, inputKey, outputKey) {
  const rows = records.map((record, i) => {
    if (isConversation(record, inputKey)) {
      const turns = turnsOf(record);
      return { row: i + 1, turns, record, problem: conversationProblem(turns) };
    }
    const pair = Array.isArray(record);
    const input = pick(record, pair ? 0 : inputKey);
    const output = pick(record, pair ? 1 : outputKey);
    let problem = "";
    if (input === undefined) problem = `missing '${inputKey}'`;
    else if (output === undefined) problem = `missing '${outputKey}'`;
    else if (typeof input !== "string") problem = `'${inputKey}' is not text`;
    else if (typeof output !== "string") problem = `'${outputKey}' is not text`;
    else if (!input.trim()) problem = `'${inputKey}' is empty`;
    else if (!output.trim()) problem = `'${outputKey}' is empty`;
    return { row: i + 1, input, output, problem };
  });
  if (rows.some((r) => r.turns)) {
    const conversations = rows.map((r) => r.record || { contents: [
      { role: "user", parts: [{ text: r.input }] }, { role: "model", parts: [{ text: r.output }] }] });
    return { rows, conversations };
  }
  const examples = rows.map((r) => ({ textInput: r.input, output: r.output }));
  return { rows, examples };
}
