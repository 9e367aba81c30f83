// Run a pixelwise `--pipeline` ONNX export in a web page, through onnxruntime-web (WebAssembly).
//
// The graph takes the decoded image as it is (uint8, height x width x 3, RGB, any size) and returns
// the label map at that size, so a page needs no pre- or post-processing code: the browser decodes
// the image, a canvas hands over its pixels, the graph does the rest. Nothing leaves the page.
// Class names and colours come from the export's sidecar (MODEL.onnx.json).
//
//   import { openModel, decodeImage, segment, colorize, labelPng } from "./segment-web.mjs";
//   const model = await openModel(await (await fetch("best.onnx")).arrayBuffer(),
//                                 await (await fetch("best.onnx.json")).json());
//   const result = await segment(model, await decodeImage(blobOrFile));
//   // result.labels: Uint8Array(height * width) of class indices; result.classes: areas per class
//   const png = await labelPng(result); // the label map as an 8-bit grey PNG of class indices
import * as ort from "onnxruntime-web";

/** A refusal a user can act on: the message names the file and the fix. */
export class ModelError extends Error {}

/** Check the sidecar before loading the graph, so a wrong file fails with a reason, not a crash. */
export function checkMetadata(meta, name = "model") {
  if (!meta || meta.format !== "pixelwise-export/1") {
    throw new ModelError(`${name}.json: not a pixelwise export record; use the .json that 'pixelwise export' writes next to the model`);
  }
  if (meta.graph !== "pipeline") {
    throw new ModelError(`${name}: this export takes normalised float tensors; re-export it with ` +
      "'pixelwise export MODEL --format onnx --pipeline' to feed it images directly");
  }
  if (!meta.output_names.includes("labels")) {
    throw new ModelError(`${name}: this pipeline export has no label map; re-export it with '--outputs labels'`);
  }
  return meta;
}

/**
 * Load the graph. Multi-threaded WebAssembly needs a cross-origin-isolated page (the server sends
 * COOP/COEP headers); elsewhere onnxruntime-web runs on one thread, which is still correct.
 */
export async function openModel(modelBytes, meta, { name = "model", threads = 2 } = {}) {
  checkMetadata(meta, name);
  ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? threads : 1;
  const session = await ort.InferenceSession.create(new Uint8Array(modelBytes), { executionProviders: ["wasm"] });
  return { session, meta, threads: ort.env.wasm.numThreads };
}

/**
 * Decode an image Blob/File with the browser's own decoders into RGB bytes, the graph's input.
 * No colour-space conversion, so the pixels are the file's, as pixelwise's Python runtime reads
 * them; alpha is dropped and grey is repeated over the three channels by the canvas.
 */
export async function decodeImage(blob, name = blob.name || "image") {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  } catch (err) {
    throw new ModelError(`${name}: cannot decode (${err.message}); use a PNG, JPEG, WebP or BMP file`);
  }
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgba.length; i += 3, j += 4) {
    rgb[i] = rgba[j]; rgb[i + 1] = rgba[j + 1]; rgb[i + 2] = rgba[j + 2];
  }
  return { width, height, rgb };
}

/** Image in, label map and per-class areas out: one call of the graph, no other processing. */
export async function segment(model, { width, height, rgb }) {
  const { session, meta } = model;
  const started = performance.now();
  const feeds = { [meta.input_name]: new ort.Tensor("uint8", rgb, [height, width, 3]) };
  const labels = (await session.run(feeds, ["labels"])).labels.data; // uint8, height x width
  const milliseconds = performance.now() - started;
  const counts = new Array(meta.names.length).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const classes = meta.names.map((name, i) => ({ name, pixels: counts[i], fraction: counts[i] / labels.length }));
  return { width, height, labels, classes, milliseconds };
}

/** The label map in the export's class colours, as canvas pixels (RGBA) with the given opacity. */
export function colorize(labels, colors, alpha = 255) {
  const rgba = new Uint8ClampedArray(labels.length * 4);
  for (let i = 0; i < labels.length; i++) {
    const c = colors[labels[i]];
    rgba[i * 4] = c[0]; rgba[i * 4 + 1] = c[1]; rgba[i * 4 + 2] = c[2]; rgba[i * 4 + 3] = alpha;
  }
  return rgba;
}

/**
 * The label map as a PNG Blob of class indices (8-bit grey, one byte per pixel): what training
 * data and pixelwise's own `--save labels` hold, so it can be read back as a label map. A canvas
 * cannot write one (it encodes RGBA), hence this small encoder; the browser's CompressionStream
 * does the deflate ("deflate" is the zlib stream PNG stores).
 */
export async function labelPng({ width, height, labels }) {
  const rows = new Uint8Array((width + 1) * height); // each row: filter type 0, then its pixels
  for (let y = 0; y < height; y++) rows.set(labels.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const idat = new Uint8Array(await new Response(new Blob([rows]).stream()
    .pipeThrough(new CompressionStream("deflate"))).arrayBuffer());
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8); // 8 bits, grey, deflate, no filter method variants, no interlace
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  return new Blob([new Uint8Array(signature), pngChunk("IHDR", header), pngChunk("IDAT", idat),
                   pngChunk("IEND", new Uint8Array(0))], { type: "image/png" });
}

function pngChunk(type, data) {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) chunk[4 + i] = type.charCodeAt(i);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

let crcTable;
function crc32(bytes) {
  crcTable ??= Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
