// mtlite in a web page: load a .mtl model and score rows, every output at once.
//
//   import * as mtlite from './mtlite.js';
//   const model = await mtlite.load('model.mtl');   // a URL, an ArrayBuffer or a Uint8Array
//   const session = model.session(256);              // the most rows one predict may pass
//   const scores = session.predict({dense, ids, bags}); // {output name: Float32Array per row}
//
// dense: Float32Array, rows x dense features; ids: BigInt64Array or Int32Array, rows x
// categorical features (features in model.features order, as in the C++ Batch); bags: one
// {ids, offsets} per multi-hot feature (offsets: rows + 1 values). rows = dense.length / dense
// features (or ids.length / categorical features), or pass rows. Bad files and bad inputs throw
// an Error with the library's message. model.id(feature, value) gives a raw categorical value
// the id training gave it. free() releases a model or session (wasm memory is not collected).
import createModule from './mtlite_web.js';

let modulePromise = null;
const wasm = () => (modulePromise ??= createModule());

export async function load(source) {
  const M = await wasm();
  let bytes = source;
  if (typeof source === 'string' || source instanceof URL) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`mtlite: ${source}: HTTP ${response.status}`);
    bytes = await response.arrayBuffer();
  }
  bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const image = M._mtw_alloc_image(bytes.length);
  if (!image) throw new Error(`mtlite: out of memory for a ${bytes.length}-byte model`);
  M.HEAPU8.set(bytes, image);
  const handle = M._mtw_model_load(image, bytes.length);
  if (!handle) throw new Error(M.UTF8ToString(M._mtw_error()));
  return new Model(M, handle);
}

const kinds = ['dense', 'categorical', 'multi_hot'];

class Model {
  constructor(M, handle) {
    this.M = M;
    this.handle = handle;
    this.outputs = Array.from({length: M._mtw_model_outputs(handle)},
                              (_, o) => M.UTF8ToString(M._mtw_model_output_name(handle, o)));
    this.features = Array.from({length: M._mtw_model_features(handle)}, (_, f) => ({
      name: M.UTF8ToString(M._mtw_model_feature_name(handle, f)),
      kind: kinds[M._mtw_model_feature_kind(handle, f)],
    }));
  }

  count(kind) { return this.features.filter((f) => f.kind === kind).length; }

  session(maxBatch = 256) {
    live(this);
    const handle = this.M._mtw_session_new(this.handle, maxBatch);
    if (!handle) throw new Error(this.M.UTF8ToString(this.M._mtw_error()));
    return new Session(this, handle, maxBatch);
  }

  id(feature, value) {
    live(this);
    const M = this.M, sp = M.stackSave();
    try {
      const out = M.stackAlloc(8);
      const rc = M._mtw_model_id(this.handle, cstring(M, feature), cstring(M, String(value)), out);
      if (rc !== 0) throw new Error(M.UTF8ToString(M._mtw_error()));
      return Number(new BigInt64Array(M.HEAPU8.buffer, out, 1)[0]);
    } finally {
      M.stackRestore(sp);
    }
  }

  free() { if (this.handle) this.M._mtw_model_free(this.handle); this.handle = 0; }
}

// A freed handle would read whatever wasm memory now holds there.
function live(object) {
  if (!object.handle) throw new Error(`mtlite: the ${object.constructor.name.toLowerCase()} was freed`);
}

function cstring(M, s) {
  const n = M.lengthBytesUTF8(s) + 1, p = M.stackAlloc(n);
  M.stringToUTF8(s, p, n);
  return p;
}

class Session {
  constructor(model, handle, maxBatch) {
    this.model = model;
    this.handle = handle;
    this.maxBatch = maxBatch;
  }

  predict({dense = new Float32Array(0), ids = new Int32Array(0), bags = [], rows} = {}) {
    live(this);
    live(this.model);
    const model = this.model, M = model.M;
    const nd = model.count('dense'), nc = model.count('categorical');
    rows ??= nd ? dense.length / nd : nc ? ids.length / nc : bags.length ? bags[0].offsets.length - 1 : 0;
    if (!Number.isInteger(rows) || rows < 0) throw new Error(`mtlite: ${rows} rows: give rows, or whole rows of inputs`);
    // One block of wasm memory for every input: 8-byte aligned pieces, freed before returning.
    const bagIds = bags.reduce((n, b) => n + b.ids.length, 0);
    const layout = [dense.length * 4, ids.length * 8, bagIds * 8, (bags.length + 1) * 4, bags.length * (rows + 1) * 4];
    const at = [];
    let size = 0;
    for (const bytes of layout) { at.push(size); size += Math.ceil(bytes / 8) * 8; }
    const base = M._malloc(Math.max(size, 8));
    if (!base) throw new Error('mtlite: out of memory for the inputs');
    try {
      const buffer = M.HEAPU8.buffer;
      new Float32Array(buffer, base + at[0], dense.length).set(dense);
      putIds(buffer, base + at[1], ids);
      const starts = new Uint32Array(buffer, base + at[3], bags.length + 1);
      let n = 0;
      bags.forEach((b, i) => {
        if (b.offsets.length !== rows + 1)
          throw new Error(`mtlite: bag ${i} has ${b.offsets.length} offsets for ${rows} rows (needs rows + 1)`);
        putIds(buffer, base + at[2] + n * 8, b.ids);
        starts[i] = n;
        n += b.ids.length;
        new Uint32Array(buffer, base + at[4] + i * (rows + 1) * 4, rows + 1).set(b.offsets);
      });
      starts[bags.length] = n;
      const rc = M._mtw_session_predict(this.handle, rows, base + at[0], dense.length, base + at[1], ids.length,
                                        bags.length, base + at[2], base + at[3], base + at[4]);
      if (rc !== 0) throw new Error(M.UTF8ToString(M._mtw_error()));
      const scores = {};
      model.outputs.forEach((name, o) => {
        scores[name] = new Float32Array(M.HEAPU8.buffer, M._mtw_session_scores(this.handle, o), rows).slice();
      });
      return scores;
    } finally {
      M._free(base);
    }
  }

  free() { if (this.handle) this.model.M._mtw_session_free(this.handle); this.handle = 0; }
}

// 64-bit ids from a BigInt64Array as they are, from any other array as integers (sign-extended).
function putIds(buffer, at, ids) {
  if (ids instanceof BigInt64Array) { new BigInt64Array(buffer, at, ids.length).set(ids); return; }
  const words = new Int32Array(buffer, at, ids.length * 2);
  for (let i = 0; i < ids.length; ++i) {
    const v = ids[i];
    if (!Number.isSafeInteger(v)) throw new Error(`mtlite: id ${v} at ${i} is not an integer`);
    words[2 * i] = v | 0;  // little-endian: low word, then high word
    words[2 * i + 1] = Math.floor(v / 4294967296);
  }
}
