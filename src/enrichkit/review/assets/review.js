// enrichkit review: save a corrected field (Enter, or leaving it changed), accept a row or send it to be
// asked again (on the model named in its row, if any), move by keyboard.
// Every value is checked against its field's schema here, and again by the server, whose message wins.
(function () {
  "use strict";
  const token = document.body.dataset.token;
  const schemas = JSON.parse(document.body.dataset.schemas);
  const rows = () => Array.from(document.querySelectorAll("tr.row"));

  function post(path, doc) {
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Review-Token": token },
      body: JSON.stringify(doc),
    }).then((r) => r.json().then((body) => ({ status: r.status, body })));
  }

  function isText(schema) {
    const t = schema.type;
    if (t === "string" || (Array.isArray(t) && t.includes("string"))) return true;
    return t === undefined && (schema.enum || [1]).every((v) => typeof v === "string");
  }

  // The schema's message for the common cases (the server checks all of them).
  function problem(name, text) {
    const schema = schemas[name] || {};
    let value = text;
    if (!isText(schema)) {
      try { value = JSON.parse(text); } catch (e) { return null; }
    }
    if (schema.enum && !schema.enum.some((v) => JSON.stringify(v) === JSON.stringify(value))) {
      const shown = typeof value === "string" ? "'" + value + "'" : String(value);
      return name + ": " + shown + " not in [" + schema.enum.join(", ") + "]";
    }
    if ((schema.type === "integer" || schema.type === "number") && typeof value !== "number") {
      return name + ": " + JSON.stringify(value) + " is not of type '" + schema.type + "'";
    }
    return null;
  }

  function settle(tr, body) {
    tr.dataset.version = body.version;
    document.getElementById("reviewed").textContent = body.summary.reviewed.toLocaleString() + " reviewed";
    document.getElementById("corrected").textContent = body.summary.corrected.toLocaleString() + " corrected";
    const bands = document.querySelectorAll("#summary .band");
    body.summary.bands.forEach((text, i) => { if (bands[i]) bands[i].textContent = text; });
    for (const [name, value] of Object.entries(body.values)) {
      const input = tr.querySelector('td.field[data-field="' + CSS.escape(name) + '"] input');
      if (input && document.activeElement !== input) input.value = typeof value === "string" ? value : value === null ? "" : JSON.stringify(value);
      if (input) input.defaultValue = input.value;
    }
    for (const [name, figure] of Object.entries(body.confidence || {})) {
      const span = tr.querySelector('td.field[data-field="' + CSS.escape(name) + '"] .fconf');
      if (span) { span.textContent = figure; span.classList.toggle("reviewed", figure === "reviewed"); }
    }
  }

  function mark(tr, state) {
    tr.classList.remove("reviewed", "corrected", "asked-again");
    tr.classList.add(state.startsWith("asked again") ? "asked-again" : state);
    tr.querySelector(".state").textContent = state;
  }

  function conflict(msg, body) {
    msg.textContent = "changed in another tab meanwhile: your value is kept here, save again to replace it";
    return body.version;
  }

  function save(input) {
    const td = input.closest("td.field");
    const tr = input.closest("tr.row");
    const msg = td.querySelector(".msg");
    const name = td.dataset.field;
    if (input.value === input.defaultValue) return;
    const local = problem(name, input.value);
    if (local) { msg.textContent = local; td.classList.add("invalid"); return; }
    post("/api/correct", { n: Number(tr.dataset.n), version: Number(tr.dataset.version), field: name, value: input.value })
      .then(({ status, body }) => {
        if (status === 200) {
          msg.textContent = ""; td.classList.remove("invalid"); td.classList.add("corrected");
          input.defaultValue = input.value; settle(tr, body); mark(tr, "corrected");
        } else if (status === 409) {
          tr.dataset.version = conflict(msg, body);
        } else {
          msg.textContent = body.error; td.classList.add("invalid");
        }
      });
  }

  function accept(tr) {
    const msg = tr.querySelector(".row-msg");
    post("/api/accept", { n: Number(tr.dataset.n), version: Number(tr.dataset.version) }).then(({ status, body }) => {
      if (status === 200) {
        msg.textContent = ""; settle(tr, body);
        if (!tr.classList.contains("corrected")) mark(tr, "reviewed");
      } else if (status === 409) {
        tr.dataset.version = conflict(msg, body);
      } else {
        msg.textContent = body.error;
      }
    });
  }

  function again(tr) {
    const msg = tr.querySelector(".row-msg");
    const model = tr.querySelector("input.model").value.trim();
    const doc = { n: Number(tr.dataset.n), version: Number(tr.dataset.version), model: model || null };
    post("/api/again", doc).then(({ status, body }) => {
      if (status === 200) {
        msg.textContent = ""; settle(tr, body); mark(tr, model ? "asked again on " + model : "asked again");
        tr.querySelectorAll("td.field").forEach((td) => td.classList.remove("corrected"));
      } else if (status === 409) {
        tr.dataset.version = conflict(msg, body);
      } else {
        msg.textContent = body.error;
      }
    });
  }

  document.addEventListener("keydown", (event) => {
    const model = event.target.closest && event.target.closest("input.model");
    if (model) {
      if (event.key === "Enter") { event.preventDefault(); again(model.closest("tr.row")); }
      if (event.key === "Escape") { model.closest("tr.row").focus(); }
      return;
    }
    const input = event.target.closest && event.target.closest("td.field input");
    if (input) {
      if (event.key === "Enter") { event.preventDefault(); save(input); }
      if (event.key === "Escape") { input.closest("tr.row").focus(); }
      return;
    }
    if (event.target.closest && event.target.closest("#filters")) return;
    const all = rows();
    const current = document.activeElement && document.activeElement.closest("tr.row");
    const at = current ? all.indexOf(current) : -1;
    if (event.key === "j" && all.length) all[Math.min(all.length - 1, at + 1)].focus();
    else if (event.key === "k" && all.length) all[Math.max(0, at - 1)].focus();
    else if (event.key === "a" && current) accept(current);
    else if (event.key === "r" && current) again(current);
    else if (event.key === "e" && current) { event.preventDefault(); current.querySelector("td.field input").focus(); }
    else if (event.key === "m" && current) { event.preventDefault(); current.querySelector("input.model").focus(); }
  });
  document.addEventListener("change", (event) => {
    const input = event.target.closest("td.field input");
    if (input) save(input);
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.accept, button.again");
    if (button) (button.classList.contains("again") ? again : accept)(button.closest("tr.row"));
  });
})();
