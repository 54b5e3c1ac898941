// The maskmtl page: send a photo to POST /predict, draw each face's box and label over it,
// and show the result table and the raw JSON. Every task of the model is shown, UTKFace's and
// its own alike. Plain JavaScript, no build step, no libraries.
"use strict";

// Box colours, cycled by face index: the same as `maskmtl predict --annotate` (render.py).
const COLOURS = ["#ff4040", "#40a0ff", "#40d25a", "#ffbe00", "#c85aff"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

let health = null;   // GET /health, once
let current = null;  // the File shown
let request = 0;     // answers to older requests are dropped

// Fields of predict's JSON that describe the face rather than a task; p_female is gender's raw
// probability, shown as gender_probability.
const FACE_FIELDS = new Set(["file", "face", "box", "detector", "detector_score", "p_female"]);

function fixed(value, digits) {
  return value === null || value === undefined ? "" : Number(value).toFixed(digits);
}

// Three significant digits, as `maskmtl predict` prints a regression task's value.
function significant(value) {
  return value === null || value === undefined ? "" : String(Number(Number(value).toPrecision(3)));
}

// The tasks an answer holds, in its order: every field that is neither about the face nor the
// <task>_probability(ies) companion of another field, and that some face has a value for.
// UTKFace's race arrives as "ethnicity", any task of the model's own under its name
// (docs/tasks.md), so a model with more tasks needs no change here.
function taskNames(faces) {
  const names = [];
  for (const face of faces) {
    for (const [key, value] of Object.entries(face)) {
      if (FACE_FIELDS.has(key) || names.includes(key) || value === null) continue;
      const base = key.replace(/_probabilit(y|ies)$/, "");
      if (base !== key && base in face) continue;
      names.push(key);
    }
  }
  return names;
}

function title(name) {
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// "34y" for age, "happy 0.81" for a class, "3.27" for another value: as face_label() in
// render.py writes on annotated photos.
function taskText(face, name) {
  const value = face[name];
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    return name === "age" ? `${Math.round(value)}y` : significant(value);
  }
  const probability = face[`${name}_probability`];
  return probability === null || probability === undefined ? String(value)
    : `${value} ${fixed(probability, 2)}`;
}

// "#0 34y female 0.91 White 0.78 happy 0.66": the face's number and every task's answer.
function faceLabel(face, tasks) {
  return [`#${face.face}`, ...tasks.map((name) => taskText(face, name)).filter(Boolean)].join(" ");
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setStatus(message) {
  $("status").textContent = message;
}

async function loadHealth() {
  try {
    const response = await fetch("/health");
    health = await response.json();
  } catch (error) {
    $("server").textContent = `The server does not answer (${error}). Is maskmtl serve running?`;
    return;
  }
  const megabytes = (health.max_upload_bytes / 1e6).toLocaleString();
  const modelName = health.model.split(/[\\/]/).pop();
  $("server").textContent = `Model ${modelName} (${health.tasks.join(", ")}), detector ` +
    `${health.detector}, engine ${health.engine}, maskmtl ${health.version}. Photos up to ` +
    `${megabytes} MB.`;
  $("server").title = health.model;
  for (const mode of health.faces) {
    const option = document.createElement("option");
    option.value = option.textContent = mode;
    option.selected = mode === health.defaults.faces;
    $("faces").append(option);
  }
  $("flip").checked = Boolean(health.defaults.flip);
}

async function predict(file) {
  current = file;
  const mine = ++request;
  showError("");
  if (health && file.size > health.max_upload_bytes) {
    showError(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; this server accepts photos ` +
              `up to ${(health.max_upload_bytes / 1e6).toLocaleString()} MB.`);
    return;
  }
  setStatus(`Predicting ${file.name}\u2026`);
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("flip", $("flip").checked ? "true" : "false");
  form.append("faces", $("faces").value || "all");
  const started = performance.now();
  let response, body;
  try {
    response = await fetch("/predict", { method: "POST", body: form });
    body = await response.json();
  } catch (error) {
    if (mine === request) {
      setStatus("");
      showError(`No answer from the server (${error}).`);
    }
    return;
  }
  if (mine !== request) return;
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  if (!response.ok) {
    setStatus("");
    showError(body.detail || `The server answered ${response.status}.`);
    return;
  }
  await showPhoto(file);
  if (mine !== request) return;
  render(body, file.name);
  setStatus(`${body.length} face(s) in ${seconds} s.`);
}

async function showPhoto(file) {
  const photo = $("photo");
  if (photo.dataset.file !== `${file.name}:${file.size}:${file.lastModified}`) {
    if (photo.src) URL.revokeObjectURL(photo.src);
    photo.src = URL.createObjectURL(file);
    photo.dataset.file = `${file.name}:${file.size}:${file.lastModified}`;
  }
  try {
    await photo.decode();
  } catch (error) {
    // The browser cannot show this format (TIFF, say); the table and JSON still come.
  }
  $("view").hidden = false;
}

function render(faces, name) {
  const tasks = taskNames(faces);
  drawBoxes(faces, tasks);
  fillTable(faces, name, tasks);
  $("json").textContent = JSON.stringify(faces, null, 2);
}

function drawBoxes(faces, tasks) {
  const photo = $("photo");
  const overlay = $("overlay");
  const width = photo.naturalWidth || 1;
  const height = photo.naturalHeight || 1;
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  overlay.replaceChildren();
  const stroke = Math.max(2, Math.min(width, height) / 250);
  const fontSize = Math.max(12, Math.min(width, height) / 32);
  for (const face of faces) {
    const [x, y, w, h] = face.box;
    const colour = COLOURS[face.face % COLOURS.length];
    const box = document.createElementNS(SVG, "rect");
    for (const [key, value] of Object.entries({ x, y, width: w, height: h, stroke: colour,
                                                 "stroke-width": stroke, class: "box" })) {
      box.setAttribute(key, value);
    }
    const label = document.createElementNS(SVG, "text");
    label.textContent = faceLabel(face, tasks);
    label.setAttribute("font-size", fontSize);
    const group = document.createElementNS(SVG, "g");
    group.append(box, label);
    overlay.append(group);
    // The label sits above the box, or inside it when there is no room, on a colour band.
    const text = label.getBBox();
    const pad = fontSize * 0.2;
    const top = y - text.height - 2 * pad >= 0 ? y - text.height - 2 * pad : y;
    const left = Math.max(0, Math.min(x, width - text.width - 2 * pad));
    label.setAttribute("x", left + pad);
    label.setAttribute("y", top + pad + fontSize * 0.85);
    const band = document.createElementNS(SVG, "rect");
    for (const [key, value] of Object.entries({ x: left, y: top, width: text.width + 2 * pad,
                                                 height: text.height + 2 * pad, fill: colour })) {
      band.setAttribute(key, value);
    }
    group.insertBefore(band, label);
  }
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

// The table's columns: the face, its box, then per task its answer, the answer's probability
// and every class's probability where the answer has them, then the detector's score. Each
// column is [header, hover title, cell text of a face, CSS class].
function tableColumns(faces, tasks) {
  const has = (key) => faces.some((face) => face[key] !== null && face[key] !== undefined);
  const columns = [["Box x,y,w,h", "", (face) => face.box.join(","), "text"]];
  for (const name of tasks) {
    columns.push([title(name), name, (face) => {
      const value = face[name];
      if (typeof value !== "number") return value ?? "";
      return name === "age" ? fixed(value, 1) : significant(value);
    }, faces.some((face) => typeof face[name] === "string") ? "text" : ""]);
    if (has(`${name}_probability`)) {
      columns.push([`P(${name})`, `probability of the ${name} shown`,
                    (face) => fixed(face[`${name}_probability`], 2), ""]);
    }
    const classes = has(`${name}_probabilities`)
      ? Object.keys(faces.find((face) => face[`${name}_probabilities`])[`${name}_probabilities`])
      : [];
    for (const label of classes) {
      columns.push([label, `${name}: probability of ${label}`,
                    (face) => fixed((face[`${name}_probabilities`] || {})[label], 2), ""]);
    }
  }
  columns.push(["Detector score", "", (face) => fixed(face.detector_score, 3), ""]);
  return columns;
}

function fillTable(faces, name, tasks) {
  const columns = [["Face", "", null, ""], ...tableColumns(faces, tasks)];
  const header = $("header");
  header.replaceChildren();
  for (const [text, hover] of columns) {
    const th = document.createElement("th");
    th.textContent = text;
    if (hover) th.title = hover;
    th.scope = "col";
    header.append(th);
  }
  const body = $("results").tBodies[0];
  body.replaceChildren();
  for (const face of faces) {
    const row = document.createElement("tr");
    row.className = "face";
    const first = cell(row, "");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = COLOURS[face.face % COLOURS.length];
    first.append(swatch, document.createTextNode(`#${face.face}`));
    for (const [, , text, className] of columns.slice(1)) cell(row, text(face), className);
    body.append(row);
  }
  $("summary").textContent = faces.length
    ? `${faces.length} face(s) in ${name}, left to right.`
    : `No face found in ${name}. Faces that are very small, turned away or cut off are missed.`;
}

function setUp() {
  const drop = $("drop");
  $("file").addEventListener("change", () => {
    if ($("file").files.length) predict($("file").files[0]);
  });
  for (const input of [$("flip"), $("faces")]) {
    input.addEventListener("change", () => { if (current) predict(current); });
  }
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) predict(event.dataTransfer.files[0]);
  });
  loadHealth();
}

document.addEventListener("DOMContentLoaded", setUp);
