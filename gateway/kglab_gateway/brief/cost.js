// The cost calculator: the same arithmetic as research/brief/cost.py's estimate() and
// break_even_users(), on the coefficients and prices `make brief` writes to cost-model.json.
// The browser test moves the sliders and checks these totals against the Python model.

const SLIDERS = {
  users: { key: "users", step: 1 },
  storage: { key: "storage_gb_per_user", step: 0.1 },
  requests: { key: "requests_per_user_per_day", step: 10 },
  price: { key: "price_per_user_month", step: 1 },
};

export function estimate(model, provider, users, storageGbPerUser, requestsPerUserPerDay) {
  const c = model.coefficients;
  const p = model.providers[provider];
  const hours = c.hours_per_month;
  const seconds = hours * 3600;
  const requests = users * requestsPerUserPerDay * 30;
  const requestCoreS = (requests * (c.request_cpu_ms + c.search_share * c.search_cpu_ms)) / 1000;
  const storedGb = users * storageGbPerUser;
  const textBytesMonth = (storedGb * 1e9 * c.text_share_of_stored_bytes) / c.months_to_fill;
  const chunksMonth = textBytesMonth / (c.words_per_chunk * c.bytes_per_word);
  const ingestCoreS = chunksMonth / c.core_chunks_per_s;
  const vcpu = c.stores_base_vcpu + (c.peak_to_average * (requestCoreS + ingestCoreS)) / seconds;
  const chunksTotal = (storedGb * 1e9 * c.text_share_of_stored_bytes) / (c.words_per_chunk * c.bytes_per_word);
  const memoryGib = c.stores_base_gib + c.services_gib + (chunksTotal * c.vector_bytes_per_chunk) / 2 ** 30;
  const minimum = users >= c.ha_from_users ? 3 : 1;
  const nodes = Math.max(minimum, Math.ceil(vcpu / p.node_vcpu), Math.ceil(memoryGib / p.node_gib));
  const derivedGb = storedGb * c.derived_storage_factor;
  const lines = {
    compute: nodes * p.node_usd_per_hour * hours,
    kubernetes: minimum > 1 ? p.kubernetes_usd_per_hour * hours : 0,
    block_storage: (derivedGb + nodes * c.os_disk_gb_per_node) * p.block_usd_per_gb_month,
    object_storage: (storedGb + derivedGb * c.backup_sets) * p.object_usd_per_gb_month,
    egress: ((requests * c.response_kib * 1024) / 1e9) * p.egress_usd_per_gb,
  };
  const total = Object.values(lines).reduce((a, b) => a + b, 0);
  return { ...lines, nodes, total, per_user: total / users };
}

export function breakEvenUsers(model, provider, price, storageGbPerUser, requestsPerUserPerDay, most = 100000) {
  let users = 1;
  while (users <= most) {
    const cost = estimate(model, provider, users, storageGbPerUser, requestsPerUserPerDay);
    if (users * price >= Math.round(cost.total * 100) / 100) return users;
    users = users < 200 ? users + 1 : Math.ceil(users * 1.05);
  }
  return null;
}

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const usdCents = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });

function render(model) {
  const value = (id) => Number(document.getElementById(id).value);
  for (const id of Object.keys(SLIDERS)) {
    document.getElementById(`${id}-value`).textContent = document.getElementById(id).value;
  }
  const rows = Object.entries(model.providers).map(([key, provider]) => {
    const r = estimate(model, key, value("users"), value("storage"), value("requests"));
    const even = breakEvenUsers(model, key, value("price"), value("storage"), value("requests"));
    const tr = document.createElement("tr");
    tr.dataset.provider = key;
    tr.dataset.total = r.total.toFixed(2);
    const cells = [
      `${provider.name} (${provider.node_type})`, String(r.nodes), usd.format(r.compute),
      usd.format(r.kubernetes), usd.format(r.block_storage), usd.format(r.object_storage),
      usd.format(r.egress), usd.format(r.total), usdCents.format(r.per_user),
      even === null ? "none below 100,000" : even.toLocaleString("en-US"),
    ];
    const classes = ["name", "nodes", "compute", "kubernetes", "block", "object", "egress", "total", "per-user", "break-even"];
    cells.forEach((text, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      cell.className = classes[i];
      cell.textContent = text;
      tr.append(cell);
    });
    return tr;
  });
  document.querySelector("#totals tbody").replaceChildren(...rows);
}

async function main() {
  const response = await fetch("/brief/cost-model.json");
  const model = await response.json();
  document.getElementById("as-of").textContent = `prices as of ${model.as_of}`;
  for (const [id, spec] of Object.entries(SLIDERS)) {
    const input = document.getElementById(id);
    const [min, max] = model.ranges[spec.key];
    Object.assign(input, { min, max, step: spec.step, value: model.defaults[spec.key] });
    input.addEventListener("input", () => render(model));
  }
  render(model);
  document.body.dataset.ready = "true";
}

main();
