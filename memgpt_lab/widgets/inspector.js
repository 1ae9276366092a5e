// View of the TrafficInspector's frame table (anywidget ES module).
//
// The Python model sends only the visible page as `rows`; this view draws
// them, reports clicks through `selected_seq`, keeps the newest row in view
// while `follow` is on, and turns `follow` off when the user scrolls away
// from the bottom, so new frames never pull the view from under them.

const COLUMNS = [
  ["seq", "seq"],
  ["t_ms", "t (ms)"],
  ["direction", "dir"],
  ["type", "type"],
  ["message_type", "message_type"],
  ["size", "size"],
  ["preview", "preview"],
];

// Pixels from the bottom that still count as "at the bottom".
const BOTTOM_SLACK = 4;

function cell(row, key) {
  const td = document.createElement("td");
  td.className = `mlab-inspector-cell mlab-col-${key}`;
  const value = row[key];
  if (key === "direction") {
    td.textContent = value === "out" ? "\u2193 out" : value === "in" ? "\u2191 in" : String(value);
  } else if (key === "t_ms") {
    td.textContent = Number(value).toFixed(1);
  } else {
    td.textContent = value === null || value === undefined ? "" : String(value);
  }
  if (key === "preview") td.title = td.textContent;
  return td;
}

function render({ model, el }) {
  el.classList.add("mlab-inspector-table");
  const scroller = document.createElement("div");
  scroller.className = "mlab-inspector-scroll";
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
  scroller.appendChild(table);
  el.appendChild(scroller);

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= BOTTOM_SLACK;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function markSelected() {
    const selected = model.get("selected_seq");
    for (const tr of tbody.children) {
      tr.classList.toggle("mlab-selected", selected !== null && Number(tr.dataset.seq) === selected);
    }
  }

  function draw() {
    const rows = model.get("rows") || [];
    const trs = rows.map((row) => {
      const tr = document.createElement("tr");
      tr.className = `mlab-inspector-row mlab-dir-${row.direction}`;
      tr.dataset.seq = String(row.seq);
      tr.dataset.type = row.type || "";
      tr.dataset.messageType = row.message_type || "";
      for (const [key] of COLUMNS) tr.appendChild(cell(row, key));
      return tr;
    });
    if (trs.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "mlab-inspector-empty";
      const td = document.createElement("td");
      td.colSpan = COLUMNS.length;
      td.textContent = model.get("total_count") ? "no frame matches the filter" : "no frames yet";
      tr.appendChild(td);
      trs.push(tr);
    }
    tbody.replaceChildren(...trs);
    markSelected();
    if (model.get("follow")) scrollToBottom();
  }

  function onClick(event) {
    const tr = event.target.closest("tr.mlab-inspector-row");
    if (!tr) return;
    model.set("selected_seq", Number(tr.dataset.seq));
    model.save_changes();
  }

  function onScroll() {
    // Scrolling to the bottom ourselves keeps atBottom() true, so only a
    // user moving up switches follow off.
    if (model.get("follow") && !atBottom()) {
      model.set("follow", false);
      model.save_changes();
    }
  }

  function onTotal() {
    // Only the "no frames yet" / "no match" placeholder depends on the total.
    if ((model.get("rows") || []).length === 0) draw();
  }

  function onFollow() {
    if (model.get("follow")) scrollToBottom();
  }

  tbody.addEventListener("click", onClick);
  scroller.addEventListener("scroll", onScroll);
  model.on("change:rows", draw);
  model.on("change:total_count", onTotal);
  model.on("change:selected_seq", markSelected);
  model.on("change:follow", onFollow);
  draw();
  // render() runs before the view is in the page (and it may sit in a hidden
  // tab), when there is no height to scroll: follow once the table has one.
  const resizes = new ResizeObserver(onFollow);
  resizes.observe(scroller);

  return () => {
    resizes.disconnect();
    model.off("change:rows", draw);
    model.off("change:total_count", onTotal);
    model.off("change:selected_seq", markSelected);
    model.off("change:follow", onFollow);
  };
}

export default { render };
