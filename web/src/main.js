// Knowledge Graph Lab in the browser: one page, a view per #/route, the graph drawn on demand.

import {
  api,
  currentEmail,
  followJob,
  onSessionChange,
  register,
  signIn,
  signOut,
  signedIn,
  uploadFile,
} from "./api.js";
import { announce, errorBox, formatDate, h, highlight, queryTerms, replace } from "./dom.js";

const main = () => document.getElementById("main");
const STAGES = ["queued", "extracting", "storing", "embedding", "graphing", "done"];
const SCOPES = [
  "documents:read",
  "documents:write",
  "jobs:read",
  "search",
  "graph:read",
  "keys:manage",
];
const NAV = [
  ["#/upload", "Upload"],
  ["#/documents", "Documents"],
  ["#/search", "Search"],
  ["#/graph", "Graph"],
  ["#/keys", "API keys"],
];
let leaveView = () => {};

// ---- shell -------------------------------------------------------------------------------

function renderNav() {
  const nav = document.getElementById("nav");
  if (!signedIn()) {
    replace(nav);
    return;
  }
  const here = window.location.hash.split("/").slice(0, 2).join("/");
  replace(
    nav,
    h(
      "ul",
      {},
      NAV.map(([href, label]) =>
        h("li", {}, h("a", { href, "aria-current": href === here ? "page" : null }, label)),
      ),
    ),
    h(
      "p",
      { class: "who" },
      h("span", {}, currentEmail()),
      " ",
      h(
        "button",
        {
          type: "button",
          id: "sign-out",
          onclick: async () => {
            await signOut();
            announce("You are signed out.");
          },
        },
        "Sign out",
      ),
    ),
  );
}

function page(title, ...children) {
  const heading = h("h1", { tabindex: "-1" }, title);
  replace(main(), heading, ...children);
  document.title = `${title} · Knowledge Graph Lab`;
  heading.focus();
}

async function route() {
  leaveView();
  leaveView = () => {};
  const [, name = "", ...rest] = window.location.hash.split("/");
  if (!signedIn()) {
    renderNav();
    signInView();
    return;
  }
  renderNav();
  const views = {
    upload: uploadView,
    documents: rest.length ? () => documentView(decodeURIComponent(rest[0])) : documentsView,
    search: searchView,
    graph: graphView,
    keys: keysView,
  };
  const view = views[name];
  if (!view) {
    window.location.hash = "#/upload";
    return;
  }
  try {
    await view();
  } catch (error) {
    console.error(error);
    replace(main(), h("h1", {}, "Something went wrong"), errorBox(error));
  }
}

// ---- sign in -----------------------------------------------------------------------------

function signInView() {
  const email = h("input", { id: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const problem = h("div", { "aria-live": "polite" });
  const act = (how) => async (event) => {
    event.preventDefault();
    if (!event.target.closest("form").reportValidity()) return;
    replace(problem);
    try {
      await how(email.value.trim(), password.value);
      announce(`Signed in as ${email.value.trim()}.`);
    } catch (error) {
      replace(problem, errorBox(error));
    }
  };
  page(
    "Sign in",
    h(
      "form",
      { class: "card narrow", onsubmit: act(signIn) },
      h("p", {}, "Sign in to upload files, follow their processing, search them and walk the graph."),
      h("label", { for: "email" }, "Email"),
      email,
      // The length rule is the server's (10 characters by default): its sentence shows if too short.
      h("label", { for: "password" }, "Password (10 characters or more for a new account)"),
      password,
      problem,
      h(
        "div",
        { class: "row" },
        h("button", { type: "submit", id: "sign-in", class: "primary" }, "Sign in"),
        h("button", { type: "button", id: "register", onclick: act(register) }, "Create account"),
      ),
    ),
  );
}

// ---- upload and progress ------------------------------------------------------------------

function jobRow(label) {
  const bar = h("progress", { max: 100, value: 0, "aria-label": `Progress of ${label}` });
  const stage = h("span", { class: "stage" }, "waiting");
  const note = h("span", { class: "note" });
  const stages = h(
    "ol",
    { class: "stages", "aria-hidden": "true" },
    STAGES.map((name) => h("li", { "data-stage": name }, name)),
  );
  const row = h(
    "li",
    { class: "job", "data-state": "waiting" },
    h("span", { class: "name" }, label),
    bar,
    stage,
    stages,
    note,
  );
  const update = (message) => {
    const state = message.duplicate ? "duplicate" : message.status || "pending";
    row.dataset.state = state;
    if (message.progress !== undefined) bar.value = message.progress;
    const current = message.stage || "queued";
    stage.textContent = `${message.status || "pending"} · ${current} · ${bar.value}%`;
    const reached = STAGES.indexOf(current);
    stages.querySelectorAll("li").forEach((item, index) => {
      item.className = index < reached || current === "done" ? "passed" : index === reached ? "now" : "";
    });
    if (message.error) replace(note, h("span", { class: "error", role: "alert" }, message.error));
    else if (message.notice) replace(note, message.notice);
    if (message.document_id && message.status === "completed") {
      replace(
        note,
        message.duplicate ? "Already in your library (a duplicate): " : "",
        h("a", { href: `#/documents/${encodeURIComponent(message.document_id)}` }, "open document"),
      );
    }
  };
  const sending = (done, total) => {
    row.dataset.state = "sending";
    stage.textContent = `sending · ${Math.floor((100 * done) / total)}% of ${(total / 1048576).toFixed(1)} MB`;
  };
  const fail = (text) => {
    row.dataset.state = "failed";
    stage.textContent = "refused";
    replace(note, h("span", { class: "error", role: "alert" }, text));
  };
  return { row, update, fail, sending };
}

/** Every file under a dropped folder (webkitGetAsEntry), with its path inside the folder. */
async function filesOfDrop(dataTransfer) {
  const entries = [...dataTransfer.items]
    .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
    .filter(Boolean);
  if (!entries.length) return [...dataTransfer.files].map((file) => ({ file, path: file.name }));
  const found = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      found.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return found;
}

function uploadView() {
  const jobs = h("ul", { class: "jobs", id: "jobs", "aria-live": "polite" });
  const stops = [];
  leaveView = () => stops.forEach((stop) => stop());
  const summary = h("p", { id: "upload-summary" });
  const counts = { done: 0, failed: 0, duplicate: 0, total: 0 };
  const tally = () => {
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    summary.textContent = `${counts.total} sent · ${counts.done} completed · ${plural(counts.duplicate, "duplicate")} · ${counts.failed} failed`;
  };
  const track = (job, view) => {
    view.update(job);
    if (job.duplicate && job.status === "completed") {
      counts.duplicate += 1;
      tally();
      return;
    }
    stops.push(
      followJob(job.job_id, (message) => {
        view.update({ ...message, duplicate: job.duplicate });
        if (message.final) {
          if (message.status !== "completed") counts.failed += 1;
          else if (job.duplicate) counts.duplicate += 1;
          else counts.done += 1;
          tally();
        }
      }),
    );
  };
  const sendFiles = async (items) => {
    const queue = items;
    counts.total += queue.length;
    tally();
    announce(`Uploading ${queue.length} file${queue.length === 1 ? "" : "s"}.`);
    const views = queue.map(({ path }) => {
      const view = jobRow(path);
      jobs.prepend(view.row);
      return view;
    });
    // Three at a time: a folder of hundreds does not open hundreds of requests at once.
    let next = 0;
    const worker = async () => {
      while (next < queue.length) {
        const index = next++;
        try {
          const sent = (done, total) => views[index].sending(done, total);
          track(await uploadFile(queue[index].file, queue[index].path, sent), views[index]);
        } catch (error) {
          views[index].fail(error.message);
          counts.failed += 1;
          tally();
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  };
  const fileInput = h("input", {
    type: "file",
    id: "files",
    multiple: true,
    class: "visually-hidden",
    onchange: (event) =>
      sendFiles([...event.target.files].map((file) => ({ file, path: file.name }))),
  });
  const folderInput = h("input", {
    type: "file",
    id: "folder",
    multiple: true,
    webkitdirectory: true,
    class: "visually-hidden",
    onchange: (event) =>
      sendFiles(
        [...event.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })),
      ),
  });
  const zone = h(
    "div",
    {
      class: "dropzone",
      id: "dropzone",
      ondragover: (event) => {
        event.preventDefault();
        zone.classList.add("over");
      },
      ondragleave: () => zone.classList.remove("over"),
      ondrop: async (event) => {
        event.preventDefault();
        zone.classList.remove("over");
        sendFiles(await filesOfDrop(event.dataTransfer));
      },
    },
    h("p", {}, "Drop files or a whole folder here: PDF, DOCX, Markdown, text, JSON or HTML."),
    h(
      "div",
      { class: "row" },
      fileInput,
      h("label", { for: "files", class: "button" }, "Choose files"),
      folderInput,
      h("label", { for: "folder", class: "button" }, "Choose a folder"),
    ),
  );
  const urls = h("textarea", { id: "urls", rows: 3, placeholder: "https://example.org/article" });
  const sendUrls = async (event) => {
    event.preventDefault();
    const list = urls.value.split(/\s+/).filter(Boolean);
    counts.total += list.length;
    tally();
    for (const url of list) {
      const view = jobRow(url);
      jobs.prepend(view.row);
      try {
        track(await api("/api/v1/urls", { method: "POST", json: { url } }), view);
      } catch (error) {
        view.fail(error.message);
        counts.failed += 1;
        tally();
      }
    }
    urls.value = "";
  };
  page(
    "Upload",
    zone,
    h(
      "form",
      { class: "card", onsubmit: sendUrls },
      h("label", { for: "urls" }, "Web pages to ingest (one URL per line)"),
      urls,
      h("button", { type: "submit", id: "send-urls" }, "Ingest pages"),
    ),
    h("h2", {}, "Progress"),
    summary,
    jobs,
    h("h2", {}, "Earlier jobs"),
    recentJobs(),
  );
}

function recentJobs() {
  const list = h("ul", { class: "plain" });
  api("/api/v1/jobs", { query: { limit: 10 } })
    .then((pageOf) =>
      replace(
        list,
        pageOf.items.length ? null : h("li", {}, "No jobs yet."),
        pageOf.items.map((job) =>
          h(
            "li",
            {},
            h("span", { class: `badge ${job.status}` }, job.status),
            " ",
            job.source_name || job.url || job.job_id,
            job.error ? h("span", { class: "error" }, ` ${job.error}`) : null,
            job.document_id && !job.document_deleted_at
              ? [" · ", h("a", { href: `#/documents/${job.document_id}` }, "open")]
              : null,
          ),
        ),
      ),
    )
    .catch((error) => replace(list, errorBox(error)));
  return list;
}

// ---- documents ---------------------------------------------------------------------------

function documentsView() {
  const filters = {
    type: h("select", { id: "filter-type" }, [
      h("option", { value: "" }, "any"),
      ...[
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "text/markdown",
        "text/plain",
        "application/json",
        "text/html",
      ].map((type) => h("option", { value: type }, type.split("/").pop().split(".").pop())),
    ]),
    source: h("input", { id: "filter-source", type: "text" }),
    created_from: h("input", { id: "filter-from", type: "date" }),
    created_to: h("input", { id: "filter-to", type: "date" }),
    sort: h("select", { id: "filter-sort" }, [
      h("option", { value: "-created_at" }, "newest first"),
      h("option", { value: "created_at" }, "oldest first"),
      h("option", { value: "title" }, "by title"),
    ]),
  };
  const perPage = h("select", { id: "filter-per" }, [10, 20, 50, 100].map((n) => h("option", { value: n, selected: n === 20 }, String(n))));
  const body = h("tbody");
  const more = h("button", { type: "button", id: "more", hidden: true }, "Load more");
  const problem = h("div");
  let cursor = null;
  let generation = 0; // a newer Apply supersedes a page still on its way
  const load = async (reset) => {
    if (reset) {
      generation += 1;
      cursor = null;
      replace(body);
    }
    const mine = generation;
    replace(problem);
    const query = { limit: perPage.value, cursor };
    for (const [name, input] of Object.entries(filters)) {
      let value = input.value;
      if (value && name.startsWith("created_")) value = new Date(value).toISOString();
      query[name] = value;
    }
    try {
      const result = await api("/api/v1/documents", { query });
      if (mine !== generation) return;
      cursor = result.next_cursor;
      more.hidden = !cursor;
      if (reset && !result.items.length)
        body.append(h("tr", {}, h("td", { colspan: 4 }, "No documents match.")));
      for (const doc of result.items) {
        body.append(
          h(
            "tr",
            {},
            h("td", {}, h("a", { href: `#/documents/${encodeURIComponent(doc.id)}` }, doc.title || doc.source)),
            h("td", {}, doc.media_type),
            h("td", {}, String(doc.chunk_count)),
            h("td", {}, formatDate(doc.created_at)),
          ),
        );
      }
    } catch (error) {
      replace(problem, errorBox(error));
    }
  };
  more.addEventListener("click", () => load(false));
  const label = (id, text) => h("label", { for: id }, text);
  page(
    "Documents",
    h(
      "form",
      {
        class: "filters",
        onsubmit: (event) => {
          event.preventDefault();
          load(true);
        },
      },
      h("div", {}, label("filter-type", "Type"), filters.type),
      h("div", {}, label("filter-source", "Source (file name or URL)"), filters.source),
      h("div", {}, label("filter-from", "From"), filters.created_from),
      h("div", {}, label("filter-to", "Before"), filters.created_to),
      h("div", {}, label("filter-sort", "Order"), filters.sort),
      h("div", {}, label("filter-per", "Per page"), perPage),
      h("button", { type: "submit", id: "apply-filters" }, "Apply"),
    ),
    problem,
    h(
      "table",
      { id: "documents" },
      h("caption", { class: "visually-hidden" }, "Your documents"),
      h("thead", {}, h("tr", {}, ["Title", "Type", "Chunks", "Added"].map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
    more,
  );
  return load(true);
}

async function documentView(id) {
  const doc = await api(`/api/v1/documents/${encodeURIComponent(id)}`);
  const chunks = h("ol", { class: "chunks", id: "chunks" });
  const moreChunks = h("button", { type: "button", hidden: true }, "More chunks");
  let cursor = null;
  const loadChunks = async () => {
    const result = await api(`/api/v1/documents/${encodeURIComponent(id)}/chunks`, {
      query: { limit: 50, cursor },
    });
    cursor = result.next_cursor;
    moreChunks.hidden = !cursor;
    for (const chunk of result.items) {
      chunks.append(
        h("li", { value: chunk.position + 1 }, chunk.heading ? h("strong", {}, `${chunk.heading}: `) : null, chunk.text),
      );
    }
  };
  moreChunks.addEventListener("click", loadChunks);
  const entities = h("ul", { class: "tags", id: "doc-entities" });
  const canvas = h("div", { class: "graph small", id: "doc-graph", role: "img", "aria-label": "The document's entities and relations" });
  const deletion = h("div", { id: "deletion", "aria-live": "polite" });
  const remove = h(
    "button",
    {
      type: "button",
      id: "delete",
      class: "danger",
      onclick: async () => {
        if (!window.confirm(`Delete “${doc.title}” from every store?`)) return;
        remove.disabled = true;
        try {
          await api(`/api/v1/documents/${encodeURIComponent(id)}`, { method: "DELETE" });
          await followDeletion(id, deletion);
        } catch (error) {
          replace(deletion, errorBox(error));
          remove.disabled = false;
        }
      },
    },
    "Delete document",
  );
  page(
    doc.title || doc.source,
    h(
      "dl",
      { class: "meta" },
      h("dt", {}, "Source"),
      h("dd", {}, doc.source),
      h("dt", {}, "Type"),
      h("dd", {}, doc.media_type),
      h("dt", {}, "Added"),
      h("dd", {}, formatDate(doc.created_at)),
      h("dt", {}, "Chunks"),
      h("dd", {}, String(doc.chunk_count)),
    ),
    remove,
    deletion,
    h("h2", {}, "Entities"),
    entities,
    canvas,
    h("h2", {}, "Chunks"),
    chunks,
    moreChunks,
  );
  await loadChunks();
  try {
    const graph = await api(`/api/v1/documents/${encodeURIComponent(id)}/graph`);
    replace(
      entities,
      graph.entities.length ? null : h("li", {}, "No entities were found in this document."),
      graph.entities.map((entity) =>
        h("li", {}, h("a", { href: `#/graph/${encodeURIComponent(entity.id)}` }, entity.name), ` ${entity.type}`),
      ),
    );
    if (graph.entities.length) {
      const { drawGraph } = await import("./graph.js");
      const drawn = drawGraph(canvas, { onSelect: () => {} });
      drawn.add(graph.entities, graph.relations);
      leaveView = () => drawn.destroy();
    } else canvas.remove();
  } catch (error) {
    replace(entities, errorBox(error));
  }
}

async function followDeletion(id, target) {
  const parts = ["document", "vector", "graph"];
  for (let attempt = 0; attempt < 120; attempt += 1) {
    const status = await api(`/api/v1/documents/${encodeURIComponent(id)}/deletion`);
    replace(
      target,
      h("p", {}, status.state === "complete" ? "Deleted from every store." : "Deleting…"),
      h(
        "ul",
        { class: "plain" },
        parts.map((part) =>
          h("li", { "data-part": part }, `${part}: ${status.parts && status.parts[part] ? "gone" : "pending"}`),
        ),
      ),
    );
    if (status.state === "complete") {
      announce("The document is deleted from every store.");
      return;
    }
    await new Promise((resolve) => window.setTimeout(resolve, 500));
  }
  replace(target, h("p", { class: "error" }, "The deletion is still running; check again later."));
}

// ---- search ------------------------------------------------------------------------------

function searchView() {
  const input = h("input", { id: "q", type: "search", required: true, maxlength: 512 });
  const results = h("div", { id: "results", "aria-live": "polite" });
  const run = async (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    replace(results, h("p", {}, "Searching…"));
    try {
      const answer = await api("/api/v1/search", { query: { q, limit: 10, expand: "graph" } });
      const terms = queryTerms(q);
      const hits = answer.results.map((hit) => ({ hit, ...highlight(hit.text, terms) }));
      // Hybrid search always ranks something; a result that shares no word with the query
      // is only the nearest by meaning, so the page says so instead of claiming a match.
      const relevant = hits.filter((item) => item.found);
      const shown = relevant.length ? relevant : hits;
      replace(
        results,
        relevant.length
          ? null
          : h(
              "p",
              { class: "empty", id: "nothing-relevant" },
              hits.length
                ? "Nothing relevant: no document contains these words. The closest by meaning:"
                : "Nothing relevant: no document matches.",
            ),
        answer.notices && answer.notices.length ? h("p", { class: "note" }, answer.notices.join(" ")) : null,
        h(
          "ol",
          { class: "hits" },
          shown.map(({ hit, node }) =>
            h(
              "li",
              {},
              h("a", { href: `#/documents/${encodeURIComponent(hit.document_id)}` }, hit.title || hit.document_id),
              hit.heading ? h("span", { class: "note" }, ` · ${hit.heading}`) : null,
              h("p", { class: "snippet" }, node),
              h("span", { class: "note" }, `score ${hit.score.toFixed(3)}`),
            ),
          ),
        ),
        answer.related_documents && answer.related_documents.length
          ? [
              h("h2", {}, "Related through the graph"),
              h(
                "ul",
                { class: "plain", id: "related" },
                answer.related_documents.map((doc) =>
                  h(
                    "li",
                    {},
                    h("a", { href: `#/documents/${encodeURIComponent(doc.document_id)}` }, doc.title),
                    ` · shares ${doc.shared_entities}: ${doc.via.join(", ")}`,
                  ),
                ),
              ),
            ]
          : null,
      );
    } catch (error) {
      replace(results, errorBox(error));
    }
  };
  page(
    "Search",
    h(
      "form",
      { class: "row", role: "search", onsubmit: run },
      h("label", { for: "q" }, "Search your documents"),
      input,
      h("button", { type: "submit", id: "search", class: "primary" }, "Search"),
    ),
    results,
  );
}

// ---- graph explorer ----------------------------------------------------------------------

/** The words that name a link: "Marie Curie — Paris". */
const linkName = (relation, names) =>
  `${names[relation.source] || relation.source} — ${names[relation.target] || relation.target}`;

/**
 * What the documents say about a link: each statement (a typed relation, "Karl Odd founded
 * Velmora Salt Company", or a co-occurrence) with the sentences that say it, linked to its document.
 */
function evidenceOf(relation, names) {
  const statements = relation.statements || [];
  if (!statements.length) {
    return h("li", {}, "The documents keep no sentences for this link any more.");
  }
  return statements.map((statement) =>
    h(
      "li",
      { class: "statement", "data-type": statement.type },
      h(
        "p",
        { class: "said" },
        statement.kind === "typed"
          ? `${names[statement.source] || statement.source} ${statement.type.toLowerCase().replaceAll("_", " ")} ${names[statement.target] || statement.target}`
          : "Named together",
        " · ",
        h("a", { href: `#/documents/${encodeURIComponent(statement.document_id)}` }, "document"),
      ),
      statement.sentences.length
        ? h("ul", { class: "sentences" }, statement.sentences.map((sentence) => h("li", {}, h("q", {}, sentence))))
        : h("p", { class: "note" }, `${statement.evidence.length} sentence${statement.evidence.length === 1 ? "" : "s"}, not kept as text.`),
    ),
  );
}

async function graphView() {
  const { drawGraph } = await import("./graph.js");
  const side = h("div", { class: "side", id: "graph-side", "aria-live": "polite" });
  const nodeList = h("ul", { class: "plain", id: "graph-nodes" });
  const canvas = h("div", { class: "graph", id: "graph", role: "img", "aria-label": "The knowledge graph; the list beside it offers the same actions" });
  let drawn = null;
  const names = {};

  const showEdge = (relation) => {
    replace(
      side,
      h("h2", {}, linkName(relation, names)),
      h("p", {}, `Named together in ${relation.weight} sentence${relation.weight === 1 ? "" : "s"}${relation.types && relation.types.length ? `; stated: ${relation.types.join(", ")}` : ""}.`),
      h("h3", {}, "Evidence"),
      h("ul", { class: "plain", id: "evidence" }, evidenceOf(relation, names)),
    );
  };
  const linkButtons = (id, relations) =>
    h(
      "ul",
      { class: "plain", id },
      relations.map((relation) =>
        h(
          "li",
          {},
          h("button", { type: "button", class: "link", onclick: () => showEdge(relation) }, linkName(relation, names)),
          h("span", { class: "note" }, ` ×${relation.weight}`),
        ),
      ),
    );

  const listNode = (entity) => {
    if (nodeList.querySelector(`[data-id="${CSS.escape(entity.id)}"]`)) return;
    nodeList.append(
      h(
        "li",
        { "data-id": entity.id },
        h("button", { type: "button", class: "link", onclick: () => expand(entity) }, `${entity.name}`),
        h("span", { class: "note" }, ` ${entity.type}`),
      ),
    );
  };
  const add = (entities, relations) => {
    entities.forEach((entity) => {
      names[entity.id] = entity.name;
      listNode(entity);
    });
    drawn.add(entities, relations);
  };
  const showNeighbours = (answer) => {
    const entity = answer.entity;
    add([entity, ...answer.neighbors], answer.relations);
    drawn.focus(entity.id);
    // The links as buttons too: the canvas cannot be reached by keyboard.
    const links = answer.relations.filter((r) => r.source === entity.id || r.target === entity.id);
    replace(
      side,
      h("h2", {}, entity.name),
      h("p", {}, `${entity.type} · ${answer.neighbors.length} neighbour${answer.neighbors.length === 1 ? "" : "s"} shown. Select a link to see the sentences behind it.`),
      linkButtons("links", links),
    );
    announce(`${entity.name}: ${answer.neighbors.length} neighbours added.`);
  };
  const expand = async (entity) => {
    try {
      showNeighbours(await api(`/api/v1/graph/entities/${encodeURIComponent(entity.id)}/neighbors`, { query: { depth: 1, limit: 30 } }));
    } catch (error) {
      replace(side, errorBox(error));
    }
  };

  const query = h("input", { id: "entity-q", type: "search", required: true });
  const found = h("ul", { class: "plain", id: "entity-results" });
  const search = async (event) => {
    event.preventDefault();
    try {
      const answer = await api("/api/v1/graph/entities", { query: { q: query.value.trim(), limit: 10 } });
      replace(
        found,
        answer.results.length ? null : h("li", {}, "No entity has a name like that."),
        answer.results.map((entity) =>
          h("li", {}, h("button", { type: "button", class: "link", onclick: () => expand(entity) }, entity.name), h("span", { class: "note" }, ` ${entity.type}`)),
        ),
      );
    } catch (error) {
      replace(found, errorBox(error));
    }
  };

  // A path by name: the server resolves each name (exact, else the one close match) and answers
  // 409 with the candidates when a name could mean several entities: the user picks one.
  const from = h("input", { id: "path-from", type: "text", required: true });
  const to = h("input", { id: "path-to", type: "text", required: true });
  const pathResult = h("div", { id: "path-result", "aria-live": "polite" });
  const findPath = async (event) => {
    if (event) event.preventDefault();
    try {
      const path = await api("/api/v1/graph/paths", { query: { from: from.value.trim(), to: to.value.trim() } });
      add(path.entities, path.relations);
      drawn.highlightPath(path.entities.map((e) => e.id));
      replace(
        pathResult,
        h("p", {}, `${path.length} step${path.length === 1 ? "" : "s"}: `, path.entities.map((e) => e.name).join(" → ")),
        h("p", { class: "note" }, "Why each step:"),
        linkButtons("path-links", path.relations),
      );
    } catch (error) {
      const candidates = (error.status === 409 && error.body && error.body.candidates) || [];
      if (!candidates.length) {
        replace(pathResult, errorBox(error));
        return;
      }
      // The server resolves "from" first: the sentence quotes the name it could not settle.
      const quoted = (field) => [`'${field.value.trim()}'`, `"${field.value.trim()}"`];
      const field = quoted(from).some((name) => error.message.startsWith(name)) ? from : to;
      const doubles = new Set(candidates.map((c) => c.name).filter((name, i, all) => all.indexOf(name) !== i));
      replace(
        pathResult,
        errorBox(error),
        h("p", {}, `Which one did you mean by “${field.value.trim()}”?`),
        h(
          "ul",
          { class: "plain", id: "path-candidates" },
          candidates.map((candidate) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "link",
                  onclick: () => {
                    field.value = doubles.has(candidate.name) ? candidate.id : candidate.name;
                    findPath();
                  },
                },
                candidate.name,
              ),
              h("span", { class: "note" }, ` ${candidate.type}`),
            ),
          ),
        ),
      );
    }
  };
  const top = h("div", { id: "top-entities" });
  page(
    "Graph explorer",
    h(
      "div",
      { class: "explorer" },
      h(
        "div",
        { class: "controls" },
        h("form", { onsubmit: search }, h("label", { for: "entity-q" }, "Find an entity"), h("div", { class: "row" }, query, h("button", { type: "submit", id: "entity-search" }, "Find"))),
        found,
        h(
          "form",
          { onsubmit: findPath },
          h("h2", {}, "Path between two entities"),
          h("label", { for: "path-from" }, "From (name)"),
          from,
          h("label", { for: "path-to" }, "To (name)"),
          to,
          h("button", { type: "submit", id: "find-path" }, "Find path"),
        ),
        pathResult,
        h("h2", {}, "Most connected"),
        top,
        h("h2", {}, "On the canvas"),
        nodeList,
      ),
      canvas,
      side,
    ),
  );
  // Drawn once the container is in the page: Cytoscape measures it.
  drawn = drawGraph(canvas, {
    onSelect: (kind, data) => (kind === "node" ? expand(data) : showEdge(data)),
  });
  leaveView = () => drawn.destroy();
  try {
    const answer = await api("/api/v1/graph/top-entities", { query: { limit: 10 } });
    replace(
      top,
      answer.results.length
        ? h(
            "ol",
            { class: "plain" },
            answer.results.map((entity) =>
              h(
                "li",
                { "data-degree": entity.degree },
                h("button", { type: "button", class: "link", onclick: () => expand(entity) }, entity.name),
                h("span", { class: "note" }, ` ${entity.type} · ${entity.degree} link${entity.degree === 1 ? "" : "s"}`),
              ),
            ),
          )
        : h("p", { class: "note" }, "Your graph is empty: upload documents and their entities appear here."),
    );
  } catch (error) {
    replace(top, errorBox(error));
  }
  // #/graph/<id or name>: the server resolves a name too.
  const [, , start] = window.location.hash.split("/");
  if (start) {
    try {
      showNeighbours(await api("/api/v1/graph/neighbors", { query: { entity: decodeURIComponent(start), depth: 1, limit: 30 } }));
    } catch (error) {
      replace(side, errorBox(error));
    }
  }
}

// ---- API keys ----------------------------------------------------------------------------

async function keysView() {
  const list = h("tbody");
  const shown = h("div", { id: "new-key", "aria-live": "polite" });
  const load = async () => {
    const keys = await api("/api/v1/auth/api-keys");
    replace(
      list,
      keys.length ? null : h("tr", {}, h("td", { colspan: 4 }, "No API keys.")),
      keys.map((key) =>
        h(
          "tr",
          {},
          h("td", {}, key.name),
          h("td", {}, key.scopes.join(", ")),
          h("td", {}, formatDate(key.created_at)),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: "danger",
                "aria-label": `Revoke ${key.name}`,
                onclick: async () => {
                  try {
                    await api(`/api/v1/auth/api-keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
                    announce(`Key ${key.name} revoked.`);
                    await load();
                  } catch (error) {
                    replace(shown, errorBox(error));
                  }
                },
              },
              "Revoke",
            ),
          ),
        ),
      ),
    );
  };
  const name = h("input", { id: "key-name", type: "text", required: true, maxlength: 100 });
  const boxes = SCOPES.map((scope) => h("input", { type: "checkbox", id: `scope-${scope}`, value: scope }));
  const create = async (event) => {
    event.preventDefault();
    const scopes = boxes.filter((box) => box.checked).map((box) => box.value);
    try {
      const created = await api("/api/v1/auth/api-keys", { method: "POST", json: { name: name.value.trim(), scopes } });
      replace(shown, h("p", {}, "Copy the key now; it is not shown again:"), h("code", { class: "key" }, created.key));
      name.value = "";
      await load();
    } catch (error) {
      replace(shown, errorBox(error));
    }
  };
  page(
    "API keys",
    h(
      "form",
      { class: "card", onsubmit: create },
      h("label", { for: "key-name" }, "Name"),
      name,
      h("fieldset", {}, h("legend", {}, "Scopes"), boxes.map((box) => h("span", { class: "check" }, box, h("label", { for: box.id }, box.value)))),
      h("button", { type: "submit", id: "create-key", class: "primary" }, "Create key"),
    ),
    shown,
    h(
      "table",
      { id: "keys" },
      h("caption", { class: "visually-hidden" }, "Your API keys"),
      h("thead", {}, h("tr", {}, ["Name", "Scopes", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
      list,
    ),
  );
  await load();
}

// ---- start -------------------------------------------------------------------------------

let wasSignedIn = signedIn();
onSessionChange(() => {
  // A refreshed token changes nothing on the page; signing in or out does.
  if (wasSignedIn === signedIn()) return;
  wasSignedIn = signedIn();
  const [, name = ""] = window.location.hash.split("/");
  if (wasSignedIn && !name) window.location.hash = "#/upload";
  else route();
});
window.addEventListener("hashchange", route);
route();
