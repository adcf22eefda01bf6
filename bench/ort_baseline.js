#!/usr/bin/env node
// ONNX Runtime (CPU) baseline for `npcore bench`: times a core exported by
// `bench/torch_baseline.py CONFIG --export-onnx MODEL.onnx` on random input of the same shape, with the
// same thread count (intraOpNumThreads N, interOpNumThreads 1, sequential execution, all graph
// optimisations), warm-up then timed runs, summarised as `npcore bench` does (percentiles interpolated
// linearly). onnxruntime-node is not a dependency of the project: install it outside the repository,
//   mkdir -p ~/.cache/npcore-bench/ort && cd ~/.cache/npcore-bench/ort &&
//   ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node
// (the plain install fails fetching a GPU add-on) and pass that folder as --ort-dir.
//
//   node bench/ort_baseline.js MODEL.onnx --batch 8 --height 144 --width 256 --threads 2 --runs 10 --json
'use strict';
const os = require('os');
const path = require('path');

function usage(msg) {
  if (msg) process.stderr.write(`ort_baseline: error: ${msg}\n`);
  process.stderr.write(
      'usage: node bench/ort_baseline.js MODEL.onnx [--batch B] [--channels C] [--height H] [--width W]\n' +
      '       [--threads N] [--warmup W] [--runs R] [--core NAME] [--ort-dir DIR] [--json]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const a = {
    model: null, batch: 1, channels: 1, height: 144, width: 256, threads: os.cpus().length, warmup: 3, runs: 20,
    core: '', json: false,
    ortDir: process.env.NPCORE_ORT_DIR || path.join(os.homedir(), '.cache', 'npcore-bench', 'ort'),
  };
  const ints = {'--batch': 'batch', '--channels': 'channels', '--height': 'height', '--width': 'width',
                '--threads': 'threads', '--warmup': 'warmup', '--runs': 'runs'};
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    if (k in ints) {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < (k === '--warmup' ? 0 : 1)) usage(`${k} needs a positive integer`);
      a[ints[k]] = v;
    } else if (k === '--core') {
      a.core = argv[++i];
    } else if (k === '--ort-dir') {
      a.ortDir = argv[++i];
    } else if (k === '--json') {
      a.json = true;
    } else if (k === '-h' || k === '--help') {
      usage();
    } else if (!k.startsWith('-') && !a.model) {
      a.model = k;
    } else {
      usage(`unknown argument ${k}`);
    }
  }
  if (!a.model) usage('MODEL.onnx is required');
  return a;
}

function quantile(sorted, q) {
  if (!sorted.length) return 0;
  const pos = q * (sorted.length - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

function loadOrt(dir) {
  try {
    return require(require.resolve('onnxruntime-node', {paths: [dir]}));
  } catch (e) {
    process.stderr.write(`ort_baseline: error: onnxruntime-node is not installed in ${dir} (${e.message.split('\n')[0]})\n`);
    process.exit(3);
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const ort = loadOrt(a.ortDir);
  const rssStart = process.resourceUsage().maxRSS * 1024 / 1e6;
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const n = a.batch * a.channels * a.height * a.width;
  const data = new Float32Array(n);
  let s = 12345;  // a small LCG: uniform [0, 1), the same every run
  for (let i = 0; i < n; ++i) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = (s >>> 8) / 16777216;
  }
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [a.batch, a.channels, a.height, a.width])};
  let out;
  for (let i = 0; i < a.warmup; ++i) out = await session.run(feeds);
  const times = [];
  for (let i = 0; i < a.runs; ++i) {
    const t0 = process.hrtime.bigint();
    out = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...times].sort((x, y) => x - y);
  const median = quantile(sorted, 0.5);
  const r = {
    core: a.core, model: a.model, framework: 'onnxruntime', ort: ort.env.versions ? ort.env.versions.node : '',
    batch: a.batch, channels: a.channels, height: a.height, width: a.width, threads: a.threads,
    warmup: a.warmup, runs: a.runs, min_ms: sorted[0], median_ms: median, p99_ms: quantile(sorted, 0.99),
    max_ms: sorted[sorted.length - 1], mean_ms: times.reduce((x, y) => x + y, 0) / times.length,
    per_image_ms: median / a.batch, output_shape: out[session.outputNames[0]].dims,
    rss_after_load_mb: rssStart, peak_rss_mb: process.resourceUsage().maxRSS * 1024 / 1e6, times_ms: times,
  };
  if (a.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
  } else {
    process.stdout.write(
        `ort_baseline ${a.model}: ONNX Runtime ${r.ort} (CPU), ${a.threads} threads\n` +
        `input: [${a.batch}, ${a.channels}, ${a.height}, ${a.width}]; runs: ${a.warmup} warm-up, ${a.runs} timed\n` +
        `latency per batch: median ${median.toFixed(2)} ms, min ${r.min_ms.toFixed(2)} ms, p99 ${r.p99_ms.toFixed(2)} ms\n` +
        `per image: median ${r.per_image_ms.toFixed(2)} ms\npeak RSS: ${r.peak_rss_mb.toFixed(1)} MB\n`);
  }
}

main().catch((e) => {
  process.stderr.write(`ort_baseline: error: ${e.message}\n`);
  process.exit(2);
});
