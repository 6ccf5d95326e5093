// The browser's only way to the server: Google's public API under /v1beta, with the API key
// from localStorage in x-goog-api-key. Errors keep the server's message (it names the field
// or the row) and its status.

const KEY = "tunesmith.apiKey";

export const apiKey = {
  get: () => localStorage.getItem(KEY) || "",
  set: (value) => localStorage.setItem(KEY, value),
  clear: () => localStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(httpStatus, status, message) {
    super(message);
    this.httpStatus = httpStatus;
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = {};
  const key = apiKey.get();
  if (key) headers["x-goog-api-key"] = key;
  if (body !== undefined) headers["content-type"] = "application/json";
  let resp;
  try {
    resp = await fetch(`/v1beta/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "UNAVAILABLE", "Cannot reach the tunesmith server. Is it running?");
  }
  const text = await resp.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = {};
  }
  if (!resp.ok) {
    const err = data.error || {};
    const error = new ApiError(resp.status, err.status || "UNKNOWN", err.message || `HTTP ${resp.status}`);
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("tunesmith:unauthenticated", { detail: error }));
    throw error;
  }
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const del = (path) => api("DELETE", path);

// Every page of a list call.
export async function listAll(path, field) {
  const out = [];
  let token = "";
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(`${path}${sep}pageSize=100${token ? `&pageToken=${encodeURIComponent(token)}` : ""}`);
    out.push(...(page[field] || []));
    token = page.nextPageToken || "";
  } while (token);
  return out;
}

// The latest operation of each tuned model (the running one first).
export async function latestOperations() {
  const ops = (await get("operations")).operations || [];
  const byModel = new Map();
  for (const op of ops) {
    const model = op.metadata?.tunedModel;
    const seen = byModel.get(model);
    if (!seen || seen.done || !op.done) byModel.set(model, op);
  }
  return byModel;
}

// A file answer (a tuned model's export): its bytes as a Blob and the name the server gives
// it. An error answer keeps the server's message, as api() does.
export async function getFile(path) {
  const headers = {};
  const key = apiKey.get();
  if (key) headers["x-goog-api-key"] = key;
  let resp;
  try {
    resp = await fetch(`/v1beta/${path}`, { headers });
  } catch {
    throw new ApiError(0, "UNAVAILABLE", "Cannot reach the tunesmith server. Is it running?");
  }
  if (!resp.ok) {
    let err = {};
    try {
      err = (await resp.json()).error || {};
    } catch {
      err = {};
    }
    throw new ApiError(resp.status, err.status || "UNKNOWN", err.message || `HTTP ${resp.status}`);
  }
  const disposition = resp.headers.get("content-disposition") || "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] || "export";
  return { blob: await resp.blob(), name };
}
