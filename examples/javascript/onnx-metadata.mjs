// The pixelwise record inside an ONNX file, for when its sidecar (MODEL.onnx.json) is not at hand.
//
// `pixelwise export` writes the same record into the model's metadata_props (key "pixelwise"),
// but onnxruntime's JavaScript API does not expose custom metadata, so this reads it from the
// file's bytes: ModelProto's field 14 (metadata_props: key = field 1, value = field 2), walking
// the top-level fields by their protobuf wire types and skipping the graph without decoding it.
// No dependency; runs in Node and in browsers.

/** The record as an object, or null when the file carries none. Throws on bytes that are not protobuf. */
export function onnxMetadata(bytes, key = "pixelwise") {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  for (const [field, wire, start, end] of fields(data, 0, data.length)) {
    if (field !== 14 || wire !== 2) continue;
    const entry = {};
    for (const [f, w, s, e] of fields(data, start, end)) {
      if (w === 2 && (f === 1 || f === 2)) entry[f === 1 ? "key" : "value"] = new TextDecoder().decode(data.subarray(s, e));
    }
    if (entry.key === key && entry.value !== undefined) return JSON.parse(entry.value);
  }
  return null;
}

// (field number, wire type, start, end) of each field in data[from, to); for length-delimited
// fields (wire type 2) start/end bound the payload.
function* fields(data, from, to) {
  let i = from;
  const varint = () => {
    let value = 0;
    for (let scale = 1; ; scale *= 128) {
      if (i >= to) throw new Error("truncated protobuf varint");
      const byte = data[i++];
      value += (byte & 0x7f) * scale; // arithmetic, not bit shifts: lengths may pass 2^31
      if (byte < 0x80) return value;
      if (scale > 2 ** 49) throw new Error("protobuf varint too long");
    }
  };
  while (i < to) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let start = i;
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const length = varint();
      start = i;
      i += length;
    } else throw new Error(`unsupported protobuf wire type ${wire}`);
    if (i > to || field === 0) throw new Error("not a protobuf message (an ONNX model)");
    yield [field, wire, start, i];
  }
}
