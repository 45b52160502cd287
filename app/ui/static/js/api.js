// The page's only way to the server: the public /v1 API of this origin, with the user's key.
const KEY_STORAGE = "ragserver.apiKey";

export class ApiError extends Error {
  constructor(status, type, message, detail, hadKey) {
    super(message);
    this.status = status;
    this.type = type;
    this.detail = detail || {};
    this.hadKey = hadKey;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function headers(extra) {
  const out = { ...(extra || {}) };
  const key = getKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function problemOf(response, hadKey) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && body.error ? body.error : {};
  return new ApiError(
    response.status,
    error.type || "HTTPError",
    error.message || `the server answered ${response.status}`,
    error.detail,
    hadKey,
  );
}

async function send(method, path, { json, form, query } = {}) {
  const url = new URL(`/v1${path}`, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) url.searchParams.set(name, value);
  const init = { method, headers: headers(json !== undefined ? { "Content-Type": "application/json" } : {}) };
  if (json !== undefined) init.body = JSON.stringify(json);
  if (form !== undefined) init.body = form;
  const hadKey = Boolean(getKey());
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "NetworkError", String(err), {}, hadKey);
  }
  if (!response.ok) throw await problemOf(response, hadKey);
  return response;
}

/** Call the API; resolves to the parsed JSON body (null for 204), rejects with an ApiError. */
export async function api(method, path, options) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  return { status: response.status, body: await response.json() };
}

/** A plain sentence for an error, for people rather than programs. */
export function explain(error) {
  if (!(error instanceof ApiError)) return sentence(error && error.message ? error.message : error);
  switch (error.status) {
    case 0:
      return "The server cannot be reached. Check that it is running, then try again.";
    case 401:
      return error.hadKey
        ? "The server did not accept this API key. Check it and enter it again."
        : "This server needs an API key. Enter your key to continue.";
    case 403:
      return `Your API key does not allow this: ${sentence(error.message)}`;
    case 429:
      return `Too many requests for now: ${sentence(error.message)}`;
    default:
      return sentence(error.message);
  }
}

function sentence(text) {
  const trimmed = String(text || "").trim();
  if (!trimmed) return "The server refused the request.";
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/**
 * Ask a question as Server-Sent Events (fetch, because EventSource cannot POST).
 * Calls onDelta(text) for each piece; resolves to the final QueryResponse.
 */
export async function streamQuery(collection, body, onDelta) {
  const response = await send("POST", `/collections/${encodeURIComponent(collection)}/query`, {
    json: { ...body, stream: true },
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let result = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (frame.event === "delta") onDelta(frame.data.text);
      else if (frame.event === "done") result = frame.data;
      else if (frame.event === "error") {
        const error = frame.data.error || {};
        throw new ApiError(error.status || 500, error.type, error.message, {}, Boolean(getKey()));
      }
    }
    if (done) break;
  }
  if (result === null) throw new ApiError(502, "StreamEnded", "the answer stream ended early", {}, true);
  return result;
}

function parseFrame(text) {
  let event = "message";
  const data = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return { event, data: data.length ? JSON.parse(data.join("\n")) : {} };
}

export function collectionPath(collection, rest = "") {
  return `/collections/${encodeURIComponent(collection)}${rest}`;
}
