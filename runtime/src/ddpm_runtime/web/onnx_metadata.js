// The `ddpm` metadata document of an ONNX model, read from the file's bytes in the page (the model file
// is the one source of truth, as for ddpm-run): ModelProto field 14 is metadata_props, a list of
// StringStringEntryProto {key = 1, value = 2}. Only the protobuf wire format is needed to find it.

export const METADATA_KEY = 'ddpm';
export const METADATA_FORMAT_VERSION = 1; // ddpm_runtime/contract.py

function readVarint(bytes, pos) {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= bytes.length) throw new Error('truncated varint');
    const b = bytes[pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

/** [field number, wire type, payload start, payload end] for each field of one message. */
function* fields(bytes, start, end) {
  let pos = start;
  while (pos < end) {
    const [key, afterKey] = readVarint(bytes, pos);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    pos = afterKey;
    if (wire === 0) {
      [, pos] = readVarint(bytes, pos);
      yield [field, wire, pos, pos];
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
      yield [field, wire, pos, pos];
    } else if (wire === 2) {
      const [length, afterLength] = readVarint(bytes, pos);
      if (afterLength + length > end) throw new Error('field runs past the end of the message');
      yield [field, wire, afterLength, afterLength + length];
      pos = afterLength + length;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  if (pos !== end) throw new Error('message ends inside a field');
}

/** The metadata_props of an ONNX model's bytes, as an object of strings. */
export function metadataProps(bytes) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const props = {};
  for (const [field, wire, start, end] of fields(bytes, 0, bytes.length)) {
    if (field !== 14 || wire !== 2) continue;
    let key = '';
    let value = '';
    for (const [f, w, s, e] of fields(bytes, start, end)) {
      if (w !== 2) continue;
      if (f === 1) key = decoder.decode(bytes.subarray(s, e));
      if (f === 2) value = decoder.decode(bytes.subarray(s, e));
    }
    props[key] = value;
  }
  return props;
}

/** The parsed `ddpm` document, or an Error with one readable line naming `source`. */
export function readModelMetadata(bytes, source = 'model') {
  let props;
  try {
    props = metadataProps(bytes);
  } catch (err) {
    throw new Error(`${source}: not an ONNX model (${err.message})`);
  }
  if (!(METADATA_KEY in props)) throw new Error(`${source}: ONNX model has no '${METADATA_KEY}' metadata (export it with \`ddpm export-onnx\`)`);
  let doc;
  try {
    doc = JSON.parse(props[METADATA_KEY]);
  } catch (err) {
    throw new Error(`${source}: '${METADATA_KEY}' metadata is not valid JSON (${err.message})`);
  }
  if (doc?.format_version !== METADATA_FORMAT_VERSION) {
    throw new Error(`${source}: metadata format version ${JSON.stringify(doc?.format_version)} is not supported (this page reads ${METADATA_FORMAT_VERSION})`);
  }
  if (doc.prediction_type !== 'epsilon') throw new Error(`${source}: prediction type ${JSON.stringify(doc.prediction_type)} is not supported (epsilon)`);
  return doc;
}
