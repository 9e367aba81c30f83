// Segment images with a pixelwise `--pipeline` ONNX export from Node.js.
//
// The graph takes the decoded image as it is (uint8, height x width x 3, RGB, any size) and
// returns the label map at that size: resizing, normalisation, padding, upsampling and arg-max all
// run inside it, so this file holds no pre- or post-processing code, only file handling. Class
// names and colours come from the export's sidecar (MODEL.onnx.json), written by `pixelwise export`,
// or from the same record inside the .onnx when the sidecar is not there.
//
//   pixelwise export best.pt --format onnx --pipeline --outputs labels   # -> best_pipeline_labels.onnx (+ .json)
//   npm ci --ignore-scripts && node segment.mjs best_pipeline_labels.onnx street.jpg more.png --out preds
//   node segment.mjs best_pipeline_labels.onnx street.jpg --backend web   # onnxruntime-web's WebAssembly build,
//                                                                         # what a browser runs
//
// Writes OUT/<stem>_labels.png (8-bit class indices) and OUT/<stem>_color.png, and prints one JSON
// line per image with each class's pixel count and share. Exit status 2 when an image or the
// model cannot be read (the other images are still segmented).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import pngjs from "pngjs";
import jpeg from "jpeg-js";
import { onnxMetadata } from "./onnx-metadata.mjs";

const { PNG } = pngjs;

class UsageError extends Error {}

function parseArgs(argv) {
  const args = { images: [], out: ".", backend: "node" };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out") args.out = argv[++i];
    else if (argv[i] === "--threads") args.threads = Number(argv[++i]);
    else if (argv[i] === "--backend") args.backend = argv[++i];
    else if (args.model === undefined) args.model = argv[i];
    else args.images.push(argv[i]);
  }
  if (!args.model || args.images.length === 0 || !args.out || !["node", "web"].includes(args.backend)) {
    throw new UsageError("usage: node segment.mjs MODEL.onnx IMAGE [IMAGE ...] [--out DIR] [--threads N] [--backend node|web]");
  }
  if (args.threads !== undefined && !(Number.isInteger(args.threads) && args.threads >= 1)) {
    throw new UsageError(`--threads ${argv[argv.indexOf("--threads") + 1]}: pass a whole number of threads, 1 or more`);
  }
  if (fs.existsSync(args.out) && !fs.statSync(args.out).isDirectory()) {
    throw new UsageError(`--out ${args.out} is a file; pass a folder for the label maps`);
  }
  return args;
}

function readMetadata(modelPath) {
  const sidecar = `${modelPath}.json`;
  if (!fs.existsSync(modelPath)) throw new UsageError(`${modelPath}: model not found; check the path`);
  let meta;
  let where = sidecar;
  if (fs.existsSync(sidecar)) {
    meta = JSON.parse(fs.readFileSync(sidecar, "utf8"));
  } else { // the same record inside the model (its metadata_props), when only the .onnx was copied
    where = modelPath;
    try {
      meta = onnxMetadata(fs.readFileSync(modelPath));
    } catch (err) {
      throw new UsageError(`${modelPath}: not an ONNX model (${err.message}); pass the .onnx that 'pixelwise export' writes`);
    }
    if (!meta) {
      throw new UsageError(`${sidecar}: metadata not found, and ${modelPath} carries none; keep the .json that ` +
        "'pixelwise export' writes next to the model");
    }
  }
  if (meta.format !== "pixelwise-export/1") throw new UsageError(`${where}: not a pixelwise export record`);
  if (meta.graph !== "pipeline") {
    throw new UsageError(`${modelPath}: this export takes normalised float tensors; re-export it with ` +
      "'pixelwise export MODEL --format onnx --pipeline' to feed it images directly");
  }
  return meta;
}

// Decoded file -> { width, height, rgb: Uint8Array(height*width*3) }, as pixelwise's Python
// runtime decodes it (alpha dropped, grey repeated; 16-bit grey scaled by its maximum; a JPEG
// turned upright by its EXIF orientation, as phone photos are displayed and labelled).
function decodeImage(file) {
  const bytes = fs.readFileSync(file);
  let width, height, data;
  if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47) {
    const png = PNG.sync.read(bytes, { skipRescale: true });
    ({ width, height, data } = png);
    if (png.depth === 16) data = scale16(png);
    else if (png.depth < 8 && png.colorType === 0) data = scaleLowBitGrey(png);
  } else if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    ({ width, height, data } = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 4096 }));
    return upright({ width, height, rgb: data }, jpegOrientation(bytes));
  } else {
    throw new Error("not a PNG or JPEG file");
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += 4) {
    rgb[i * 3] = data[j]; rgb[i * 3 + 1] = data[j + 1]; rgb[i * 3 + 2] = data[j + 2];
  }
  return { width, height, rgb };
}

// The EXIF orientation tag (1-8) of a JPEG's APP1 segment; 1 (as stored) when there is none.
function jpegOrientation(bytes) {
  let i = 2;
  while (i + 4 <= bytes.length && bytes[i] === 0xff) {
    const marker = bytes[i + 1];
    const length = bytes.readUInt16BE(i + 2);
    if (marker === 0xda) break; // start of scan: no metadata after it
    if (marker === 0xe1 && bytes.toString("latin1", i + 4, i + 10) === "Exif\0\0") {
      const tiff = i + 10;
      const little = bytes.toString("latin1", tiff, tiff + 2) === "II";
      const u16 = (o) => (little ? bytes.readUInt16LE(o) : bytes.readUInt16BE(o));
      const u32 = (o) => (little ? bytes.readUInt32LE(o) : bytes.readUInt32BE(o));
      try {
        const ifd = tiff + u32(tiff + 4);
        for (let k = 0, n = u16(ifd); k < n; k++) {
          const entry = ifd + 2 + 12 * k;
          if (u16(entry) === 0x0112) {
            const value = u16(entry + 8);
            return value >= 1 && value <= 8 ? value : 1;
          }
        }
      } catch {
        return 1; // a damaged EXIF block: the pixels as stored, as Pillow does
      }
    }
    i += 2 + length;
  }
  return 1;
}

// Pixels as displayed for EXIF orientation o (Pillow's ImageOps.exif_transpose).
function upright(img, o) {
  if (o === 1) return img;
  const { width: w, height: h, rgb } = img;
  const turned = o >= 5;
  const W = turned ? h : w, H = turned ? w : h;
  const out = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let sx, sy;
      switch (o) {
        case 2: sx = w - 1 - x; sy = y; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sx = x; sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        default: sx = w - 1 - y; sy = x; // 8
      }
      const s = (sy * w + sx) * 3, d = (y * W + x) * 3;
      out[d] = rgb[s]; out[d + 1] = rgb[s + 1]; out[d + 2] = rgb[s + 2];
    }
  }
  return { width: W, height: H, rgb: out };
}

function scale16(png) {
  // pngjs keeps 16-bit samples with skipRescale; grey ones are scaled by the image's maximum as in
  // pixelwise (a 12-bit scan stays visible), colour ones by 65535.
  const grey = (png.colorType & 2) === 0;
  let hi = 65535;
  if (grey) {
    hi = 0;
    for (let i = 0; i < png.data.length; i += 4) hi = Math.max(hi, png.data[i]);
    hi = hi || 1;
  }
  const out = new Uint8Array(png.data.length);
  for (let i = 0; i < png.data.length; i++) out[i] = Math.min(255, Math.floor((png.data[i] / hi) * 255));
  return out;
}

function scaleLowBitGrey(png) {
  // skipRescale (kept for 16-bit samples) also leaves 1-, 2- and 4-bit grey samples unscaled
  // (0..1, 0..3, 0..15): stretch them to 0..255 as every decoder does.
  const factor = 255 / ((1 << png.depth) - 1);
  const out = new Uint8Array(png.data.length);
  for (let i = 0; i < png.data.length; i += 4) {
    out[i] = out[i + 1] = out[i + 2] = Math.round(png.data[i] * factor);
    out[i + 3] = 255;
  }
  return out;
}

function writePng(file, width, height, pixels, colorType) {
  const png = new PNG({ width, height, colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8 });
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: false }));
  fs.renameSync(tmp, file); // atomic: a reader never sees half a PNG
}

// onnxruntime-node: native CPU kernels. onnxruntime-web: the WebAssembly build a browser loads
// (same graph, same Tensor API); in Node it is a way to check a model before shipping it to a page.
async function openRuntime(args) {
  if (args.backend === "node") return (await import("onnxruntime-node")).default;
  const ort = await import("onnxruntime-web");
  ort.env.wasm.numThreads = args.threads || 1;
  return ort;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const meta = readMetadata(args.model);
  const ort = await openRuntime(args);
  const session = args.backend === "web"
    ? await ort.InferenceSession.create(fs.readFileSync(args.model)) // a browser passes fetched bytes
    : await ort.InferenceSession.create(args.model, args.threads ? { intraOpNumThreads: args.threads, interOpNumThreads: 1 } : {});
  fs.mkdirSync(args.out, { recursive: true });
  const colors = meta.colors;
  let failed = 0;
  for (const file of args.images) {
    let image;
    try {
      image = decodeImage(file);
    } catch (err) {
      console.error(`${file}: cannot decode (${err.message}); skipped`);
      failed++;
      continue;
    }
    const { width, height, rgb } = image;
    const feeds = { [meta.input_name]: new ort.Tensor("uint8", rgb, [height, width, 3]) };
    const labels = (await session.run(feeds, ["labels"])).labels.data; // uint8, height x width (int32 above
    // 256 classes, which this example's 8-bit label PNGs cannot hold: it is for models of up to 256)
    const counts = new Array(meta.names.length).fill(0);
    const color = new Uint8Array(width * height * 3);
    for (let i = 0; i < labels.length; i++) {
      const c = labels[i];
      counts[c]++;
      color[i * 3] = colors[c][0]; color[i * 3 + 1] = colors[c][1]; color[i * 3 + 2] = colors[c][2];
    }
    const stem = path.parse(file).name;
    writePng(path.join(args.out, `${stem}_labels.png`), width, height, labels, 0);
    writePng(path.join(args.out, `${stem}_color.png`), width, height, color, 2);
    const classes = meta.names.map((name, i) => ({ name, pixels: counts[i], fraction: counts[i] / labels.length }));
    console.log(JSON.stringify({ image: file, width, height, classes }));
  }
  return failed ? 2 : 0;
}

export { decodeImage }; // for tests, and for your own code

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) { // run, not imported
  main().then((code) => { process.exitCode = code; }).catch((err) => {
    console.error(err instanceof UsageError ? err.message : `error: ${err.message}`);
    process.exitCode = 2;
  });
}
