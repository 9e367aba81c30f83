// The page around segment-web.mjs: pick a model and an image (or pass them in the address), see
// the overlay and the area of each class.
//
// Address parameters, for links and for scripted runs (tests, batch checks in a headless browser):
//   index.html?model=URL_OF.onnx[&image=URL]...[&report=URL]
// The sidecar is fetched from URL_OF.onnx.json (where there is none, the record pixelwise writes
// inside the .onnx serves). With `report`, every image's result (label map as
// base64, class areas, time) or error is POSTed there as one JSON document once all are done.
import { onnxMetadata } from "../onnx-metadata.mjs";
import { ModelError, colorize, decodeImage, labelPng, openModel, segment } from "./segment-web.mjs";

const $ = (id) => document.getElementById(id);
let model = null;
let shown = null; // { image, result }: the last segmented image, redrawn when the opacity changes

function say(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new ModelError(`${url}: HTTP ${response.status}; check the address`);
  return response;
}

function parseSidecar(text, name) {
  try {
    return JSON.parse(text);
  } catch {
    throw new ModelError(`${name}: not JSON; use the .json that 'pixelwise export' writes next to the model`);
  }
}

// The sidecar when there is one, else the same record inside the model (pixelwise writes both).
function recordInside(bytes, name, missing) {
  let meta;
  try {
    meta = onnxMetadata(bytes);
  } catch (err) {
    throw new ModelError(`${name}: not an ONNX model (${err.message}); choose the .onnx that 'pixelwise export' writes`);
  }
  if (!meta) throw new ModelError(`${missing}, and ${name} carries no pixelwise record; select the .json written next to it too`);
  return meta;
}

async function modelFromFiles(files) {
  const graph = files.find((f) => f.name.endsWith(".onnx"));
  const sidecar = files.find((f) => f.name.endsWith(".json"));
  if (!graph) throw new ModelError("select the .onnx model (and the .json written next to it)");
  const bytes = await graph.arrayBuffer();
  const meta = sidecar ? parseSidecar(await sidecar.text(), sidecar.name)
    : recordInside(bytes, graph.name, "no .json selected");
  return openModel(bytes, meta, { name: graph.name });
}

async function modelFromUrl(url) {
  const [graph, sidecar] = await Promise.all([fetchOk(url), fetch(`${url}.json`)]);
  const bytes = await graph.arrayBuffer();
  const meta = sidecar.ok ? parseSidecar(await sidecar.text(), `${url}.json`)
    : recordInside(bytes, url, `${url}.json: HTTP ${sidecar.status}`);
  return openModel(bytes, meta, { name: url });
}

function draw() {
  if (!shown) return;
  const { image, result } = shown;
  const canvas = $("view");
  canvas.width = image.width;
  canvas.height = image.height;
  const alpha = Number($("opacity").value);
  const color = colorize(result.labels, model.meta.colors);
  const out = new ImageData(image.width, image.height);
  for (let i = 0, j = 0; i < out.data.length; i += 4, j += 3) {
    for (let k = 0; k < 3; k++) out.data[i + k] = (1 - alpha) * image.rgb[j + k] + alpha * color[i + k];
    out.data[i + 3] = 255;
  }
  canvas.getContext("2d").putImageData(out, 0, 0);
}

function tabulate(result) {
  const rows = result.classes
    .map((c, i) => ({ ...c, color: model.meta.colors[i] }))
    .filter((c) => c.pixels > 0)
    .sort((a, b) => b.pixels - a.pixels);
  const table = $("areas");
  table.replaceChildren();
  const head = table.insertRow();
  for (const title of ["", "class", "pixels", "share"]) head.appendChild(document.createElement("th")).textContent = title;
  for (const c of rows) {
    const row = table.insertRow();
    const swatch = row.insertCell();
    swatch.className = "swatch";
    swatch.style.background = `rgb(${c.color.join(",")})`;
    row.insertCell().textContent = c.name;
    Object.assign(row.insertCell(), { className: "num", textContent: c.pixels.toLocaleString() });
    Object.assign(row.insertCell(), { className: "num", textContent: `${(100 * c.fraction).toFixed(1)}%` });
  }
}

// Links to save what the page shows. The colour map, the label map and the areas are made once per
// image (their object URLs released at the next one); the overlay is read from the canvas when
// clicked, so it has the opacity the user chose.
let saved = [];
async function offerDownloads(name, result) {
  saved.forEach((url) => URL.revokeObjectURL(url));
  const stem = name.split("/").pop().replace(/\.[^.]*$/, "");
  const canvas = new OffscreenCanvas(result.width, result.height);
  canvas.getContext("2d").putImageData(new ImageData(colorize(result.labels, model.meta.colors), result.width,
                                                     result.height), 0, 0);
  const color = await canvas.convertToBlob({ type: "image/png" });
  const areas = new Blob([JSON.stringify({ image: name, width: result.width, height: result.height,
                                           classes: result.classes }, null, 2)], { type: "application/json" });
  saved = [color, await labelPng(result), areas].map((b) => URL.createObjectURL(b));
  Object.assign($("save-color"), { href: saved[0], download: `${stem}_color.png` });
  Object.assign($("save-labels"), { href: saved[1], download: `${stem}_labels.png` });
  Object.assign($("save-areas"), { href: saved[2], download: `${stem}_areas.json` });
  $("save-overlay").download = `${stem}_overlay.png`;
  $("downloads").hidden = false;
}

$("save-overlay").addEventListener("click", (event) => { event.currentTarget.href = $("view").toDataURL("image/png"); });

async function segmentBlob(blob, name) {
  const image = await decodeImage(blob, name);
  const result = await segment(model, image);
  shown = { image, result };
  draw();
  tabulate(result);
  await offerDownloads(name, result);
  say(`${name}: ${image.width}x${image.height}, ${result.milliseconds.toFixed(0)} ms on ${model.threads} thread(s)`);
  return result;
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// Scripted run: every image of the address in turn, then one report.
async function runFromAddress(params) {
  const report = { model: params.get("model"), threads: null, images: [] };
  try {
    say(`Loading ${report.model} ...`);
    model = await modelFromUrl(report.model);
    report.threads = model.threads;
    $("image-file").disabled = false; // more images can be picked by hand
    for (const url of params.getAll("image")) {
      try {
        const blob = await (await fetchOk(url)).blob();
        const result = await segmentBlob(blob, url);
        report.images.push({ image: url, width: result.width, height: result.height, classes: result.classes,
                             milliseconds: result.milliseconds, labels: base64(result.labels) });
      } catch (err) {
        say(err.message, true);
        report.images.push({ image: url, error: err.message });
      }
    }
  } catch (err) {
    say(err.message, true);
    report.error = err.message;
  }
  if (params.get("report")) {
    await fetch(params.get("report"), { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify(report) });
  }
}

$("model-files").addEventListener("change", async (event) => {
  try {
    say("Loading the model ...");
    model = await modelFromFiles([...event.target.files]);
    $("image-file").disabled = false;
    say(`Model ready (${model.meta.names.length} classes, ${model.meta.precision}). Choose an image.`);
  } catch (err) {
    say(err.message, true);
  }
});

$("image-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  try {
    await segmentBlob(file, file.name);
  } catch (err) {
    say(err.message, true);
  }
});

$("opacity").addEventListener("input", draw);

const params = new URLSearchParams(location.search);
if (params.get("model")) runFromAddress(params);
