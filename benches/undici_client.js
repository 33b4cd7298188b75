#!/usr/bin/env node
// One benchmark measurement of undici (Node's HTTP/1.1 client, the library
// undipy translates) in a fresh process: the Node twin of
// python/undipy/_bench/client.py, with the same flags, workloads and JSON line.
//
//     node benches/undici_client.js --workload c64 --url http://127.0.0.1:8080 \
//         --duration 5 [--warmup 1]
//     node benches/undici_client.js --workload hconn --url https://127.0.0.1:8443 \
//         --ca ca.pem --duration 5
//     node benches/undici_client.js --versions
//
// prints one JSON line on stdout:
//
//     {"client": "undici", "loop": "node", "workload": ..., "requests": N,
//      "bytes": N, "wall": s, "cpu": s, "cpu_user": s, "cpu_sys": s,
//      "errors": N, "errors_total": N, "first_error": str | null,
//      "maxrss_kib": N, "shutdown_error": str | null}
//
// N workers (N = the workload's in-flight count) each await pool.request()
// and read the whole body (body.arrayBuffer()) back to back, on one
// undici.Pool with `connections` = N (keep-alive; the pipelined workloads:
// their connections and `pipelining`). The streaming workloads count each
// chunk as it arrives (body.on('data')). `--warmup` seconds untimed, then the
// counters and process.cpuUsage() (getrusage RUSAGE_SELF: every thread of the
// process) are snapshotted, and again `--duration` seconds later. `--loop` is
// accepted and ignored: Node has one event loop.
//
// undici comes from Debian (`node-undici`, in /usr/share/nodejs), which a
// Node that is not Debian's does not search: the script looks there too.
// Without undici it prints {"unavailable": reason} and exits with status 3.
// The workload table below must match client.py's WORKLOADS and PIPELINED.

'use strict'

const fs = require('fs')
const path = require('path')

// name -> [path, method, in-flight count, expected response body length]
const WORKLOADS = {
  seq: ['/small', 'GET', 1, 13],
  c64: ['/small', 'GET', 64, 13],
  big: ['/1m', 'GET', 8, 1 << 20],
  post: ['/echo', 'POST', 16, 2],
  c64p4: ['/small', 'GET', 64, 13],
  c64p1: ['/small', 'GET', 64, 13],
  s1m: ['/1m', 'GET', 8, 1 << 20],
  s100m: ['/100m', 'GET', 4, 100 * (1 << 20)],
  s1g: ['/1g', 'GET', 1, 1024 * (1 << 20)],
  hseq: ['/small', 'GET', 1, 13],
  hc64: ['/small', 'GET', 64, 13],
  hbig: ['/1m', 'GET', 8, 1 << 20],
  hpost: ['/echo', 'POST', 16, 2],
  hconn: ['/small', 'GET', 16, 13]
}
const STREAMING = new Set(['s1m', 's100m', 's1g'])
const HTTPS = new Set(['hseq', 'hc64', 'hbig', 'hpost', 'hconn'])
// A new connection for every request: `reset: true` (undici sends
// `connection: close` and ends the connection with the response).
const NEW_CONNECTION = new Set(['hconn'])
// name -> [connections, pipelining]
const PIPELINED = { c64p4: [4, 10], c64p1: [1, 10] }
const POST_BODY = Buffer.alloc(64 * 1024, 'x')
const MAX_ERRORS = 1000
// Where Debian's node-* packages install (NODE_PATH is searched first).
const DEBIAN_NODE_DIRS = ['/usr/share/nodejs', '/usr/lib/nodejs', '/usr/local/share/nodejs']

// The file `require('undici')` loads: NODE_PATH and node's own search first,
// then the Debian directories, which then become global search paths (as if
// in NODE_PATH) so that undici's own dependencies (busboy) resolve too.
function undiciEntry () {
  try {
    return require.resolve('undici')
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err
    const dirs = DEBIAN_NODE_DIRS.filter((d) => fs.existsSync(path.join(d, 'undici', 'package.json')))
    if (!dirs.length) throw err
    const Module = require('module')
    process.env.NODE_PATH = [...dirs, process.env.NODE_PATH].filter(Boolean).join(path.delimiter)
    if (typeof Module._initPaths === 'function') {
      Module._initPaths() // re-reads NODE_PATH into the global search paths
    } else {
      Module.globalPaths.unshift(...dirs)
    }
    return require.resolve('undici')
  }
}

function loadUndici () {
  return require(undiciEntry())
}

function undiciVersion () {
  // index.js sits next to package.json.
  const pkg = path.join(path.dirname(undiciEntry()), 'package.json')
  return JSON.parse(fs.readFileSync(pkg, 'utf8')).version
}

function describe (err) {
  if (!(err instanceof Error)) return String(err).slice(0, 500)
  const code = err.code ? ` [${err.code}]` : ''
  return `${err.name}${code}: ${err.message}`.slice(0, 500)
}

function parseArgs (argv) {
  const args = { duration: 5, warmup: 1, loop: 'node' }
  const flags = new Set(['--workload', '--url', '--ca', '--duration', '--warmup', '--loop', '--client'])
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]
    let value
    if (a === '--versions') {
      args.versions = true
      continue
    }
    const eq = a.indexOf('=')
    if (eq > 0) {
      value = a.slice(eq + 1)
      a = a.slice(0, eq)
    }
    if (!flags.has(a)) usage(`unknown argument: ${argv[i]}`)
    if (value === undefined) {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      value = argv[++i]
    }
    args[a.slice(2)] = value
  }
  args.duration = Number(args.duration)
  args.warmup = Number(args.warmup)
  if (!(args.duration > 0) || !(args.warmup >= 0)) usage('--duration must be > 0, --warmup >= 0')
  return args
}

function usage (msg) {
  process.stderr.write(
    'usage: node undici_client.js --workload NAME --url ORIGIN [--ca PEM] ' +
    '[--duration S] [--warmup S] [--loop IGNORED] | --versions\n' +
    `undici_client.js: error: ${msg}\n`
  )
  process.exit(2)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function within (promise, ms) {
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms)
  })
  return Promise.race([promise.then(() => 'done'), timeout]).finally(() => clearTimeout(timer))
}

class Stats {
  constructor () {
    this.requests = 0
    this.bytes = 0
    this.errors = 0
    this.firstError = null
    this.stop = false
  }

  error (msg) {
    this.errors++
    if (this.firstError === null) this.firstError = msg
    if (this.errors >= MAX_ERRORS) this.stop = true
  }
}

// The whole body, as one buffer (like undipy-request's `await resp.body.bytes()`).
async function readAll (body) {
  return (await body.arrayBuffer()).byteLength
}

// The streaming sink: each chunk's length goes to stats.bytes as it arrives.
function countChunks (body, stats) {
  return new Promise((resolve, reject) => {
    let length = 0
    body.on('data', (chunk) => {
      length += chunk.length
      stats.bytes += chunk.length
    })
    body.on('end', () => resolve(length))
    body.on('error', reject)
  })
}

async function measure (undici, args) {
  const [reqPath, method, n, expectLen] = WORKLOADS[args.workload]
  const streaming = STREAMING.has(args.workload)
  const [connections, pipelining] = PIPELINED[args.workload] || [n, 1]
  const options = { connections, pipelining }
  if (args.ca) options.connect = { ca: fs.readFileSync(args.ca, 'utf8') }
  const pool = new undici.Pool(args.url.replace(/\/+$/, ''), options)
  const opts = { path: reqPath, method }
  if (method === 'POST') opts.body = POST_BODY
  if (NEW_CONNECTION.has(args.workload)) opts.reset = true
  const stats = new Stats()

  async function worker () {
    while (!stats.stop) {
      let status, length
      try {
        const { statusCode, body } = await pool.request(opts)
        status = statusCode
        length = streaming ? await countChunks(body, stats) : await readAll(body)
      } catch (err) {
        stats.error(describe(err))
        await sleep(1)
        continue
      }
      if (status !== 200 || length !== expectLen) {
        stats.error(`unexpected response: status ${status}, ${length} body bytes`)
        continue
      }
      stats.requests++
      if (!streaming) stats.bytes += length // a streaming body counted its chunks
    }
  }

  const workers = Array.from({ length: n }, worker)
  const stopped = Promise.all(workers)

  await sleep(args.warmup * 1000)
  const [r0, b0, e0] = [stats.requests, stats.bytes, stats.errors]
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await sleep(args.duration * 1000)
  const t1 = performance.now()
  const cpu1 = process.cpuUsage()
  const [r1, b1, e1] = [stats.requests, stats.bytes, stats.errors]

  // Shutting down is not measured, but a hang or a failure is reported.
  stats.stop = true
  let shutdownError = null
  if (await within(stopped, 30000) === 'timeout') {
    shutdownError = 'requests still outstanding 30 s after the window ended'
  }
  try {
    if (await within(pool.close(), 30000) === 'timeout') {
      shutdownError = shutdownError || 'close() did not finish within 30 s'
    }
  } catch (err) {
    shutdownError = shutdownError || `close() failed: ${describe(err)}`
  }

  const user = (cpu1.user - cpu0.user) / 1e6
  const sys = (cpu1.system - cpu0.system) / 1e6
  return {
    requests: r1 - r0,
    bytes: b1 - b0,
    wall: (t1 - t0) / 1000,
    cpu: user + sys,
    cpu_user: user,
    cpu_sys: sys,
    errors: e1 - e0,
    errors_total: stats.errors,
    first_error: stats.firstError,
    maxrss_kib: process.resourceUsage().maxRSS,
    shutdown_error: shutdownError
  }
}

function emit (obj, code) {
  // Synchronous: nothing is lost when the process exits right after.
  fs.writeSync(1, JSON.stringify(obj) + '\n')
  process.exit(code)
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  if (args.versions) {
    let version
    try {
      loadUndici()
      version = undiciVersion()
    } catch (err) {
      version = `unavailable: ${describe(err).split('\n')[0]}`
    }
    emit({ undici: version, node: process.versions.node }, 0)
  }
  if (!args.workload || !args.url) usage('--workload and --url are required')
  if (!(args.workload in WORKLOADS)) {
    usage(`unknown workload: ${args.workload} (choose from ${Object.keys(WORKLOADS).join(', ')})`)
  }
  if (HTTPS.has(args.workload) && !args.url.startsWith('https://')) {
    usage(`the ${args.workload} workload needs an https:// --url`)
  }
  const head = { client: 'undici', loop: 'node', workload: args.workload }
  let undici
  try {
    undici = loadUndici()
  } catch (err) {
    emit({ ...head, unavailable: describe(err).split('\n')[0] }, 3)
  }
  const result = await measure(undici, args)
  emit({ ...head, ...result }, 0)
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
