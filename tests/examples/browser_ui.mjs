// Drives the browser example's form as a user does (file pickers, slider) in headless Chromium
// through playwright-core, and prints what the page shows as one JSON line.
//   node browser_ui.mjs CHROMIUM URL MODEL.onnx MODEL.onnx.json IMAGE LOGITS.onnx SAVE_DIR NO_RECORD.onnx
import { chromium } from "playwright-core";

const [executablePath, url, model, sidecar, image, logits, saveDir, noRecord] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const status = async (page) => ({
  text: await page.textContent("#status"),
  error: await page.$eval("#status", (el) => el.classList.contains("error")),
});
const waitStatus = (page, pattern) =>
  page.waitForFunction((p) => new RegExp(p).test(document.querySelector("#status").textContent), pattern,
                       { timeout: 120000 });
try {
  const page = await browser.newPage({ acceptDownloads: true });
  await page.goto(url);
  const out = { imageDisabledAtFirst: await page.isDisabled("#image-file") };

  await page.setInputFiles("#model-files", [noRecord]); // no .json, and no record inside the model
  await waitStatus(page, "carries no pixelwise record");
  out.noRecord = await status(page);

  await page.setInputFiles("#model-files", [model]); // the .json forgotten: the record inside serves
  await waitStatus(page, "Model ready");
  out.onlyOnnx = await status(page);

  await page.setInputFiles("#model-files", [logits, `${logits}.json`]); // not a --pipeline export
  await waitStatus(page, "--pipeline");
  out.logits = await status(page);

  await page.setInputFiles("#model-files", [model, sidecar]);
  await waitStatus(page, "Model ready");
  out.ready = await status(page);
  out.imageEnabled = !(await page.isDisabled("#image-file"));

  await page.setInputFiles("#image-file", [image]);
  await waitStatus(page, "thread");
  out.segmented = await status(page);
  await page.$eval("#opacity", (el) => { el.value = "1"; el.dispatchEvent(new Event("input")); });
  out.canvas = await page.$eval("#view", (c) => {
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let text = "";
    for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
    return { width: c.width, height: c.height, rgba: btoa(text) };
  });
  out.table = await page.$$eval("#areas tr", (rows) =>
    rows.slice(1).map((r) => [...r.querySelectorAll("td")].slice(1).map((td) => td.textContent)));
  out.saved = [];
  for (const id of ["save-overlay", "save-color", "save-labels", "save-areas"]) { // what the user's browser would save
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(`#${id}`)]);
    await download.saveAs(`${saveDir}/${download.suggestedFilename()}`);
    out.saved.push(download.suggestedFilename());
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
