// View of the SweepView's run table (anywidget ES module).
//
// The Python model sends only the visible page of runs as `rows`; this view
// draws them and reports a click through `selected_run` (the run's id).

const COLUMNS = [
  ["preset", "preset"],
  ["model", "model"],
  ["persona", "persona"],
  ["human", "human"],
  ["conversation", "conversation"],
  ["repeat", "rep"],
  ["status", "status"],
  ["turns", "turns passed"],
  ["checks", "checks passed"],
  ["tokens", "tokens"],
  ["latency_ms", "latency (ms)"],
];

function render({ model, el }) {
  el.classList.add("mlab-sweep-table");
  const table = document.createElement("table");
  const thead = document.createElement("thead");
  const head = document.createElement("tr");
  for (const [key, label] of COLUMNS) {
    const th = document.createElement("th");
    th.className = `mlab-col-${key}`;
    th.textContent = label;
    head.appendChild(th);
  }
  thead.appendChild(head);
  const tbody = document.createElement("tbody");
  table.append(thead, tbody);
  el.appendChild(table);

  function markSelected() {
    const selected = model.get("selected_run");
    for (const tr of tbody.children) {
      tr.classList.toggle("mlab-selected", tr.dataset.run === selected);
    }
  }

  function draw() {
    const rows = model.get("rows") || [];
    const trs = rows.map((row) => {
      const tr = document.createElement("tr");
      tr.className = `mlab-sweep-row mlab-sweep-${row.status}`;
      tr.dataset.run = row.run_id;
      for (const [key] of COLUMNS) {
        const td = document.createElement("td");
        td.className = `mlab-col-${key}`;
        const value = row[key];
        td.textContent = value === null || value === undefined ? "" : String(value);
        tr.appendChild(td);
      }
      tr.title = row.run_id;
      return tr;
    });
    if (trs.length === 0) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = COLUMNS.length;
      td.className = "mlab-sweep-empty";
      td.textContent = "no run matches the filter";
      tr.appendChild(td);
      trs.push(tr);
    }
    tbody.replaceChildren(...trs);
    markSelected();
  }

  function onClick(event) {
    const tr = event.target.closest("tr.mlab-sweep-row");
    if (!tr) return;
    model.set("selected_run", tr.dataset.run);
    model.save_changes();
  }

  tbody.addEventListener("click", onClick);
  model.on("change:rows", draw);
  model.on("change:selected_run", markSelected);
  draw();
  return () => {
    model.off("change:rows", draw);
    model.off("change:selected_run", markSelected);
  };
}

export default { render };
