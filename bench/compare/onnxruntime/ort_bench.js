// ONNX Runtime (onnxruntime-node) on the ONNX files of export_onnx.py, one thread: checks each
// model's scores against mtlite's for the fixed input (ort_reference_data), then prints the median
// microseconds per batch (session.run, binding included) at B = 1, 16, 256.
//
//   node ort_bench.js [--calls N] [--dir DIR] [--json OUT] model.onnx ...   (run.sh runs it)
// --dir: where input.f32 and scores_*.f32 are (default: the current directory).
// --json: also write {model name: {batch: median us}} to OUT.
// "empty" in a file name: the binding's per-call cost (no scores to check); "int8": a dynamic
// int8 model, checked to 0.02 against mtlite f32; anything else to 1e-5.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const D = 256, ROWS = 256, OUTPUTS = 3, BATCHES = [1, 16, 256], WARMUP = 20;

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; ++i) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function main() {
  const args = process.argv.slice(2);
  let calls = 200, dir = '.', json = null;
  const models = [];
  for (let i = 0; i < args.length; ++i) {
    if (args[i] === '--calls') calls = Number(args[++i]);
    else if (args[i] === '--dir') dir = args[++i];
    else if (args[i] === '--json') json = args[++i];
    else models.push(args[i]);
  }
  if (!models.length || !(calls > 0)) {
    console.error('usage: node ort_bench.js [--calls N] [--dir DIR] [--json OUT] model.onnx ...');
    process.exit(2);
  }
  const x = readF32(path.join(dir, 'input.f32'));
  const want = {f32: readF32(path.join(dir, 'scores_f32.f32')), i8: readF32(path.join(dir, 'scores_i8.f32'))};
  const options = {
    intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  console.log(`onnxruntime-node ${ort.env.versions.node} (ORT ${ort.env.versions.common}), ` +
              `1 thread, median of ${calls} calls after ${WARMUP} warm-up calls, us per batch`);
  console.log(['model'.padEnd(24), ...BATCHES.map((b) => `B=${b}`.padStart(9)), '  max |diff| vs mtlite f32 (i8)'].join(''));
  let failed = false;
  const results = {};
  for (const file of models) {
    const session = await ort.InferenceSession.create(file, options);
    const [input] = session.inputNames, [output] = session.outputNames;
    const name = path.basename(file, '.onnx');
    let check = '';
    if (!name.includes('empty')) {
      const got = (await session.run({[input]: new ort.Tensor('float32', x, [ROWS, D])}))[output].data;
      if (got.length !== ROWS * OUTPUTS) throw new Error(`${name}: ${got.length} scores, expected ${ROWS * OUTPUTS}`);
      const d32 = maxDiff(got, want.f32), d8 = maxDiff(got, want.i8);
      const tol = name.includes('int8') ? 0.02 : 1e-5;
      const ok = d32 <= tol;
      failed = failed || !ok;
      check = `  ${d32.toExponential(2)} (${d8.toExponential(2)}) ${ok ? 'ok' : 'FAIL'} <= ${tol}`;
    }
    const cells = [];
    results[name] = {};
    for (const rows of BATCHES) {
      const feeds = {[input]: new ort.Tensor('float32', x.subarray(0, rows * D), [rows, D])};
      for (let i = 0; i < WARMUP; ++i) await session.run(feeds);
      const us = [];
      for (let i = 0; i < calls; ++i) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        us.push(Number(process.hrtime.bigint() - t0) / 1e3);
      }
      us.sort((a, b) => a - b);
      const median = calls % 2 ? us[(calls - 1) / 2] : (us[calls / 2 - 1] + us[calls / 2]) / 2;
      results[name][rows] = median;
      cells.push(median.toFixed(1).padStart(9));
    }
    console.log(name.padEnd(24) + cells.join('') + check);
    await session.release();
  }
  if (json) fs.writeFileSync(json, JSON.stringify(results, null, 1) + '\n');
  if (failed) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
