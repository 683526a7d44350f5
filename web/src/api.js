// The API as the gateway serves it: bearer tokens, problem+json errors, feature detection.

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
let openapi = null;
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

/** Call the API; JSON in and out. A 401 refreshes the session once, then signs out. */
export async function api(path, { method = "GET", json, form, body, query, retry = true } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of [].concat(value)) url.searchParams.append(name, item);
  }
  const headers = {};
  if (session) headers.Authorization = `Bearer ${session.access_token}`;
  let payload = body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (form !== undefined) {
    payload = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload });
  } catch {
    throw new ApiError(0, "The server cannot be reached; check that it is running.", null);
  }
  if (response.status === 401 && retry && session && (await refresh())) {
    return api(path, { method, json, form, body, query, retry: false });
  }
  if (response.status === 401 && session && !path.startsWith("/api/v1/auth/login")) {
    saveSession(null);
  }
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

/** Upload one file as multipart; resolves to the job (duplicate: true for one seen before). */
export async function uploadFile(file, name) {
  const form = new FormData();
  form.append("file", file, name || file.name);
  return api("/api/v1/files", { method: "POST", body: form });
}

/** The OpenAPI document's paths, fetched once: which routes this server offers. */
export async function routes() {
  if (openapi === null) {
    try {
      const response = await fetch("/openapi.json");
      openapi = response.ok ? (await response.json()).paths || {} : {};
    } catch {
      openapi = {};
    }
  }
  return openapi;
}

/** The first GET route whose path matches the pattern, or null when the server has none. */
export async function findRoute(pattern) {
  const paths = await routes();
  return Object.keys(paths).find((path) => pattern.test(path) && paths[path].get) || null;
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
