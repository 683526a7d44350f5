// The API as the gateway serves it: bearer tokens, problem+json errors.

const STORE = window.sessionStorage; // this tab's session only; cleared on sign-out
const KEY = "kglab.session";

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body;
  }
}

let session = JSON.parse(STORE.getItem(KEY) || "null");
let refreshing = null;
const listeners = new Set();

export function onSessionChange(listener) {
  listeners.add(listener);
}

function saveSession(next) {
  session = next;
  if (next) STORE.setItem(KEY, JSON.stringify(next));
  else STORE.removeItem(KEY);
  listeners.forEach((listener) => listener(session));
}

export const signedIn = () => session !== null;
export const currentEmail = () => (session ? session.email : null);
export const accessToken = () => (session ? session.access_token : null);

async function problemOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const detail =
    (body && typeof body.detail === "string" && body.detail) ||
    (body && Array.isArray(body.detail) && body.detail.map((d) => d.msg).join("; ")) ||
    `The server answered ${response.status} ${response.statusText}.`;
  return new ApiError(response.status, detail, body);
}

async function refresh() {
  if (!session) return false;
  refreshing ??= (async () => {
    try {
      const response = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: session.refresh_token }),
      });
      if (!response.ok) return false;
      const pair = await response.json();
      saveSession({ ...session, ...pair });
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function urlOf(path, query) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of [].concat(value)) url.searchParams.append(name, item);
  }
  return url;
}

/** Send with the session's token; a 401 refreshes the session once, then signs out. */
async function send(url, { method = "GET", headers = {}, body, retry = true }) {
  const withToken = () =>
    session ? { ...headers, Authorization: `Bearer ${session.access_token}` } : headers;
  let response;
  try {
    response = await fetch(url, { method, headers: withToken(), body });
    if (response.status === 401 && retry && session && (await refresh())) {
      response = await fetch(url, { method, headers: withToken(), body });
    }
  } catch {
    throw new ApiError(0, "The server cannot be reached; check that it is running.", null);
  }
  if (response.status === 401 && session && retry) saveSession(null);
  return response;
}

/** Call the API; JSON in and out; an error answer becomes an ApiError with its sentence. */
export async function api(path, { method = "GET", json, form, body, query, retry = true } = {}) {
  const headers = {};
  let payload = body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (form !== undefined) {
    payload = new URLSearchParams(form);
  }
  const response = await send(urlOf(path, query), { method, headers, body: payload, retry });
  if (!response.ok) throw await problemOf(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export async function signIn(email, password) {
  const pair = await api("/api/v1/auth/login", {
    method: "POST",
    form: { username: email, password },
    retry: false,
  });
  saveSession({ ...pair, email });
}

export async function register(email, password) {
  await api("/api/v1/auth/register", { method: "POST", json: { email, password }, retry: false });
  await signIn(email, password);
}

export async function signOut() {
  if (session) {
    try {
      await api("/api/v1/auth/logout", {
        method: "POST",
        json: { refresh_token: session.refresh_token },
        retry: false,
      });
    } catch {
      // Signed out here whatever the server says: the tokens are dropped below.
    }
  }
  saveSession(null);
}

/** Files from this size on go through tus (the plain upload's limit is 10 MB). */
export const RESUMABLE_FROM = 8 * 1024 * 1024;
const PIECE = 2 * 1024 * 1024;
const TUS = { "Tus-Resumable": "1.0.0" };

/** Upload one file; resolves to its job (duplicate: true for one seen before). */
export async function uploadFile(file, name, onSent = () => {}) {
  if (file.size >= RESUMABLE_FROM) return uploadResumable(file, name || file.name, onSent);
  const form = new FormData();
  form.append("file", file, name || file.name);
  return api("/api/v1/files", { method: "POST", body: form });
}

/**
 * A tus upload that survives a reload: its address is kept in localStorage under the file's
 * name, size and date, so choosing the same file again resumes from the offset the server has.
 */
async function uploadResumable(file, name, onSent) {
  const key = `kglab.tus:${currentEmail()}:${name}:${file.size}:${file.lastModified}`;
  let location = window.localStorage.getItem(key);
  let offset = 0;
  let last = null;
  if (location) {
    const head = await send(location, { method: "HEAD", headers: TUS });
    if (head.ok) {
      offset = Number(head.headers.get("Upload-Offset") || 0);
      last = head;
    } else location = null;
  }
  if (!location) {
    const encoded = btoa(String.fromCharCode(...new TextEncoder().encode(name)));
    const created = await send("/api/v1/uploads", {
      method: "POST",
      headers: { ...TUS, "Upload-Length": String(file.size), "Upload-Metadata": `filename ${encoded}` },
    });
    if (!created.ok) throw await problemOf(created);
    location = new URL(created.headers.get("Location"), window.location.origin).pathname;
    window.localStorage.setItem(key, location);
  }
  onSent(offset, file.size);
  while (offset < file.size) {
    const piece = await send(location, {
      method: "PATCH",
      headers: { ...TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": String(offset) },
      body: file.slice(offset, offset + PIECE),
    });
    if (!piece.ok) {
      if (piece.status !== 409 && piece.status !== 503) window.localStorage.removeItem(key);
      throw await problemOf(piece);
    }
    offset = Number(piece.headers.get("Upload-Offset"));
    last = piece;
    onSent(offset, file.size);
  }
  window.localStorage.removeItem(key);
  const jobId = last && last.headers.get("Upload-Job-Id");
  if (!jobId) throw new ApiError(0, "The upload finished but the server named no job.", null);
  const job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
  return { ...job, duplicate: last.headers.get("Upload-Duplicate") === "true" || job.duplicate };
}

/** Follow a job's progress over the WebSocket; falls back to polling if the socket fails. */
export function followJob(jobId, onMessage) {
  let done = false;
  let socket = null;
  let timer = null;
  const finish = (message) => {
    done = true;
    onMessage(message);
  };
  const poll = async () => {
    if (done) return;
    try {
      const job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
      const final = job.status === "completed" || job.status === "failed";
      if (final) finish({ ...job, final: true });
      else onMessage(job);
    } catch (error) {
      onMessage({ job_id: jobId, status: "failed", error: error.message, final: true });
      done = true;
    }
    if (!done) timer = window.setTimeout(poll, 1000);
  };
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const token = encodeURIComponent(accessToken() || "");
  try {
    socket = new WebSocket(
      `${scheme}//${window.location.host}/ws/jobs/${encodeURIComponent(jobId)}?token=${token}`,
    );
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.final) {
        finish(message);
        socket.close();
      } else onMessage(message);
    };
    socket.onclose = () => {
      if (!done) poll();
    };
  } catch {
    poll();
  }
  return () => {
    done = true;
    if (timer) window.clearTimeout(timer);
    if (socket) socket.close();
  };
}
