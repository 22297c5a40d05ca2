#!/usr/bin/env node
/*
 * fnbox built-in Node.js event runtime (FunctionGraph dialect).
 *
 * Self-contained CommonJS, standard library only, Node 14+.  fnbox starts it as
 * `node fnbox_runtime.js` with the working directory set to the function's code root.
 * It loads the handler named by RUNTIME_HANDLER once (require(), or import() for ESM),
 * then loops over the instance's runtime API (RUNTIME_API_ADDR):
 *
 *   GET  /v1/runtime/invocation/request          next event (long poll)
 *   POST /v1/runtime/invocation/response/<id>    result
 *   POST /v1/runtime/invocation/error/<id>       {"errorType","errorMessage","stackTrace"}
 *   POST /v1/runtime/init/error                  load / handler resolution failure
 *
 * An invocation whose X-CFF-Invoke-Type is `initializer` runs the initializer
 * (RUNTIME_INITIALIZER_HANDLER) instead of the handler.
 */
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const url = require('url');
const util = require('util');

const API_PREFIX = '/v1/runtime';
const RETRY_DELAY_MS = 50;
const API_GONE_AFTER_MS = 5000;
const RUNTIME_FILE = __filename;

// ---------------------------------------------------------------------------- utilities

function env(name, dflt) {
  const v = process.env[name];
  return v === undefined || v === '' ? (dflt === undefined ? '' : dflt) : v;
}

function envInt(name, dflt) {
  const n = Math.trunc(Number(env(name, String(dflt))));
  return Number.isFinite(n) ? n : dflt;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function exitNow(code) {
  // stdout/stderr writes to pipes and files are synchronous on Linux.
  process.exit(code);
}

function loadUserData() {
  try {
    const d = JSON.parse(env('RUNTIME_USERDATA', '{}'));
    return d && typeof d === 'object' && !Array.isArray(d) ? d : {};
  } catch (e) {
    return {};
  }
}

const USER_DATA = loadUserData();

// Frames of this file and of Node's internals are noise in the user's stack trace.
function isRuntimeFrame(line) {
  if (line.includes(RUNTIME_FILE)) return true;
  return /^\s+at /.test(line) && line.includes('node:internal/');
}

function stackLines(err) {
  if (!err || typeof err.stack !== 'string') return [];
  return err.stack.split('\n').filter((l) => !isRuntimeFrame(l));
}

// A module-not-found message lists the require stack, which ends with this file.
function cleanMessage(msg) {
  return String(msg).split('\n').filter((l) => l !== `- ${RUNTIME_FILE}`).join('\n');
}

function describeError(err) {
  if (err instanceof Error || (err && typeof err === 'object' && 'message' in err)) {
    return {
      errorType: String(err.name || (err.constructor && err.constructor.name) || 'Error'),
      errorMessage: cleanMessage(err.message === undefined ? '' : err.message),
      stackTrace: stackLines(err),
    };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch (e) {
    message = undefined;
  }
  if (message === undefined) message = String(err);
  return { errorType: 'Error', errorMessage: message, stackTrace: [] };
}

function printError(prefix, info) {
  const trace = info.stackTrace.length ? '\n' + info.stackTrace.join('\n') : '';
  process.stderr.write(`[ERROR] ${prefix}${info.errorType}: ${info.errorMessage}${trace}\n`);
}

function utcStamp() {
  // Second precision, as FunctionGraph's logs show it: 2026-03-17T10:13:22Z.
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The context logger's levels (FunctionGraph's runtime: ERROR always; WARN unless ERROR; INFO at
// INFO or DEBUG; DEBUG only at DEBUG). The initial level is RUNTIME_LOG_LEVEL (any case), INFO
// when unset or unknown; logger.setLevel changes it.
const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'];

function initialLogLevel() {
  let level = String(process.env.RUNTIME_LOG_LEVEL || 'INFO').trim().toUpperCase();
  if (level === 'WARNING') level = 'WARN';
  return LOG_LEVELS.includes(level) ? level : 'INFO';
}

// ---------------------------------------------------------------------------- runtime API client

class ApiGone extends Error {}

const [apiHost, apiPort] = (() => {
  const addr = env('RUNTIME_API_ADDR', '127.0.0.1:8080');
  const i = addr.lastIndexOf(':');
  if (i < 0) return [addr, 80];
  return [addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', Number(addr.slice(i + 1))];
})();

const agent = new http.Agent({ keepAlive: true });

function requestOnce(method, reqPath, body, headers) {
  return new Promise((resolve, reject) => {
    const h = Object.assign({}, headers || {});
    if (body !== undefined) h['Content-Length'] = body.length;
    const req = http.request(
      { host: apiHost, port: apiPort, method, path: reqPath, headers: h, agent },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
      }
    );
    req.on('error', reject);
    req.end(body);
  });
}

// One request; connection errors are retried every 50 ms; ApiGone after ~5 s of failures.
async function apiRequest(method, reqPath, body, headers) {
  let failingSince = null;
  for (;;) {
    try {
      return await requestOnce(method, reqPath, body, headers);
    } catch (e) {
      const now = Date.now();
      if (failingSince === null) {
        failingSince = now; // a stale keep-alive socket fails once: retry at once
        continue;
      }
      if (now - failingSince > API_GONE_AFTER_MS) throw new ApiGone();
      await sleep(RETRY_DELAY_MS);
    }
  }
}

function apiPost(reqPath, body, contentType) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return apiRequest('POST', reqPath, buf, { 'Content-Type': contentType || 'application/json' });
}

function errorBody(info) {
  return JSON.stringify({ errorType: info.errorType, errorMessage: info.errorMessage, stackTrace: info.stackTrace });
}

// ---------------------------------------------------------------------------- context

class Logger {
  constructor(requestId) {
    this._requestId = requestId;
    this._level = initialLogLevel();
    for (const m of ['info', 'warn', 'error', 'debug', 'setLevel']) this[m] = this[m].bind(this);
  }
  setLevel(level) {
    if (LOG_LEVELS.includes(level)) this._level = level;
  }
  _log(level, args) {
    if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this._level)) return;
    const text = util.format(...args).replace(/\r?\n/g, '\r');
    process.stdout.write(`${utcStamp()} ${this._requestId} ${level} ${text}\n`);
  }
  info(...args) { this._log('INFO', args); }
  warn(...args) { this._log('WARN', args); }
  error(...args) { this._log('ERROR', args); }
  debug(...args) { this._log('DEBUG', args); }
}

class Context {
  constructor(requestId, invokeType, headers, timeoutS) {
    this._requestId = requestId;
    this._invokeType = invokeType;
    this._startMs = Date.now();
    this._timeoutS = timeoutS;
    const dl = Number(headers['x-cff-deadline-ms']);
    this._deadlineMs = headers['x-cff-deadline-ms'] && Number.isFinite(dl) ? dl : null;
    this._accessKey = headers['x-cff-access-key'] || '';
    this._secretKey = headers['x-cff-secret-key'] || '';
    this._authToken = headers['x-cff-auth-token'] || '';
    this._securityToken = headers['x-cff-security-token'] || '';
    this._logger = new Logger(requestId);
    // Methods are own bound properties so destructuring (`const {getLogger} = context`) works.
    for (const name of Object.getOwnPropertyNames(Context.prototype)) {
      if (name !== 'constructor' && typeof this[name] === 'function') this[name] = this[name].bind(this);
    }
  }
  getRequestID() { return this._requestId; }
  getRemainingTimeInMilliSeconds() {
    const remaining = this._deadlineMs !== null
      ? this._deadlineMs - Date.now()
      : this._timeoutS * 1000 + this._startMs - Date.now();
    return Math.max(0, Math.trunc(remaining));
  }
  getRunningTimeInSeconds() { return envInt('RUNTIME_TIMEOUT', 3); }
  getMemorySize() { return envInt('RUNTIME_MEMORY', 128); }
  getCPUNumber() { return envInt('RUNTIME_CPU', 300); }
  getUserData(key, dflt) {
    return Object.prototype.hasOwnProperty.call(USER_DATA, key) ? USER_DATA[key] : dflt;
  }
  getFunctionName() { return env('RUNTIME_FUNC_NAME'); }
  getVersion() { return env('RUNTIME_FUNC_VERSION', 'latest'); }
  getPackage() { return env('RUNTIME_PACKAGE', 'default'); }
  getProjectID() { return env('RUNTIME_PROJECT_ID'); }
  getAlias() { return ''; }
  getInvokeType() { return this._invokeType; }
  getAccessKey() { return this._accessKey; }
  getSecretKey() { return this._secretKey; }
  getSecurityAccessKey() { return this._accessKey; }
  getSecuritySecretKey() { return this._secretKey; }
  getSecurityToken() { return this._securityToken; }
  getToken() { return this._authToken; }
  getLogger() { return this._logger; }
}

// ---------------------------------------------------------------------------- loading user code

class InitError extends Error {
  constructor(errorType, message, cause) {
    super(message);
    this.errorType = errorType;
    this.cause = cause;
  }
}

const MODULE_EXTS = ['.js', '.mjs', '.cjs'];

function findModuleFile(base) {
  for (const ext of MODULE_EXTS) {
    if (fs.existsSync(base + ext) && fs.statSync(base + ext).isFile()) return base + ext;
  }
  if (fs.existsSync(base)) {
    const st = fs.statSync(base);
    if (st.isFile()) return base;
    if (st.isDirectory()) {
      try {
        return require.resolve(base); // index.js / package.json "main"
      } catch (e) {
        return null;
      }
    }
  }
  return null;
}

// Split "dir/file.fn" (or "file.nested.fn") into the module file and the property path.
// The longest module name that exists as a file wins, so "my.app.handler" finds my.app.js.
function splitSpec(codeRoot, spec, what) {
  const slash = spec.lastIndexOf('/');
  const dir = spec.slice(0, slash + 1);
  const base = spec.slice(slash + 1);
  const parts = base.split('.');
  if (parts.length < 2 || parts.some((p) => p === '')) {
    throw new InitError('Runtime.MalformedHandlerName', `Bad ${what} '${spec}': expected '<module>.<function>'`);
  }
  for (let i = parts.length - 1; i >= 1; i--) {
    const modName = dir + parts.slice(0, i).join('.');
    const file = findModuleFile(path.resolve(codeRoot, modName));
    if (file) return { modName, file, props: parts.slice(i) };
  }
  return { modName: dir + parts.slice(0, -1).join('.'), file: null, props: parts.slice(-1) };
}

const moduleCache = new Map();

async function importFile(file) {
  return import(url.pathToFileURL(file).href);
}

async function loadModule(codeRoot, modName, file) {
  const key = file || modName;
  if (moduleCache.has(key)) return moduleCache.get(key);
  let mod;
  try {
    if (file === null) {
      // Not a file under the code root: maybe a package in node_modules.
      let resolved;
      try {
        resolved = require.resolve(modName, { paths: [codeRoot] });
      } catch (e) {
        throw new InitError('Runtime.ImportModuleError',
          `Cannot find module '${modName}' in ${codeRoot}`, null);
      }
      mod = require(resolved);
    } else if (file.endsWith('.mjs')) {
      mod = await importFile(file);
    } else {
      try {
        mod = require(file);
      } catch (e) {
        if (e && e.code === 'ERR_REQUIRE_ESM') mod = await importFile(file);
        else throw e;
      }
    }
  } catch (e) {
    if (e instanceof InitError) throw e;
    if (e instanceof SyntaxError) {
      const err = new InitError('Runtime.UserCodeSyntaxError', `Syntax error in module '${modName}': ${e.message}`, e);
      // ESM syntax errors carry no file position in their stack: name the file at least.
      const stack = stackLines(e);
      if (file && !stack.some((l) => l.includes(path.basename(file)))) stack.unshift(file);
      err.stack = stack.join('\n');
      err.stackTrace = stack;
      throw err;
    }
    const what = e && e.code === 'MODULE_NOT_FOUND' ? '' : `${(e && e.name) || 'Error'}: `;
    throw new InitError('Runtime.ImportModuleError',
      `Unable to import module '${modName}': ${what}${cleanMessage(e && e.message !== undefined ? e.message : e)}`, e);
  }
  moduleCache.set(key, mod);
  return mod;
}

async function resolveFunction(codeRoot, spec, what) {
  spec = spec.trim().replace(/\\/g, '/');
  const { modName, file, props } = splitSpec(codeRoot, spec, what);
  const mod = await loadModule(codeRoot, modName, file);
  const lookup = (root) => {
    let v = root;
    for (const p of props) {
      if (v === null || v === undefined) return undefined;
      v = v[p];
    }
    return v;
  };
  let fn = lookup(mod);
  if (fn === undefined && mod && mod.default && typeof mod.default === 'object') fn = lookup(mod.default);
  const name = props.join('.');
  const What = what.charAt(0).toUpperCase() + what.slice(1);
  if (fn === undefined || fn === null) {
    throw new InitError('Runtime.HandlerNotFound', `${What} '${name}' missing on module '${modName}'`, null);
  }
  if (typeof fn !== 'function') {
    throw new InitError('Runtime.HandlerNotFound', `${What} '${name}' on module '${modName}' is not a function (${typeof fn})`, null);
  }
  return fn;
}

// ---------------------------------------------------------------------------- invocation

// In-flight invocations, for errors that escape the handler (uncaught exceptions, rejections).
const inFlight = new Map(); // requestId -> settle(errorInfo)

function callUser(fn, args, callbackStyle, requestId) {
  let settle;
  const outcome = new Promise((resolve, reject) => {
    settle = (err, value) => {
      if (err !== null && err !== undefined) reject(err);
      else resolve(value);
    };
  });
  let settled = false;
  const done = (err, value) => {
    if (settled) return;
    settled = true;
    inFlight.delete(requestId);
    settle(err, value);
  };
  const asError = (e) => (e === undefined || e === null ? new Error(`handler failed with ${e}`) : e);
  inFlight.set(requestId, (e) => done(asError(e)));
  try {
    const ret = callbackStyle ? fn(...args, (err, value) => done(err, value)) : fn(...args);
    if (ret && typeof ret.then === 'function') {
      // Callback-style handlers that are also async: a resolved value wins, undefined waits
      // for the callback.
      ret.then((v) => { if (!callbackStyle || v !== undefined) done(null, v); }, (e) => done(asError(e)));
    } else if (!callbackStyle) {
      done(null, ret);
    }
  } catch (e) {
    done(asError(e));
  }
  return outcome;
}

function serialize(result) {
  if (Buffer.isBuffer(result)) return [result, 'application/octet-stream'];
  if (result instanceof Uint8Array) {
    return [Buffer.from(result.buffer, result.byteOffset, result.byteLength), 'application/octet-stream'];
  }
  if (typeof result === 'string') return [Buffer.from(result, 'utf8'), 'text/plain; charset=utf-8'];
  let text = result === undefined ? 'null' : JSON.stringify(result);
  if (text === undefined) text = 'null'; // functions, symbols
  return [Buffer.from(text, 'utf8'), 'application/json'];
}

async function postError(requestId, info) {
  printError(`${requestId} `, info);
  const res = await apiPost(`${API_PREFIX}/invocation/error/${requestId}`, errorBody(info));
  if (res.status >= 300) {
    process.stderr.write(`[fnbox-runtime] posting the error of ${requestId}: HTTP ${res.status} ${res.body.slice(0, 200)}\n`);
  }
}

function parseEvent(body) {
  const text = body.toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    return text;
  }
}

class Runtime {
  constructor() {
    this.codeRoot = path.resolve(env('RUNTIME_CODE_ROOT', process.cwd()));
    this.handlerSpec = env('RUNTIME_HANDLER', 'index.handler');
    this.initializerSpec = env('RUNTIME_INITIALIZER_HANDLER', '');
    this.timeoutS = envInt('RUNTIME_TIMEOUT', 3);
    this.initTimeoutS = envInt('RUNTIME_INITIALIZER_TIMEOUT', 3);
    this.handler = null;
    this.initializer = null;
  }

  async load() {
    try {
      this.handler = await resolveFunction(this.codeRoot, this.handlerSpec, 'handler');
      if (this.initializerSpec) {
        this.initializer = await resolveFunction(this.codeRoot, this.initializerSpec, 'initializer');
      }
    } catch (e) {
      const err = e instanceof InitError ? e : new InitError('Runtime.ImportModuleError', String(e && e.message), e);
      const info = {
        errorType: err.errorType,
        errorMessage: err.message,
        stackTrace: err.stackTrace || (err.cause ? stackLines(err.cause) : []),
      };
      printError('', info);
      try {
        await apiPost(`${API_PREFIX}/init/error`, errorBody(info));
      } catch (ignored) {
        // API gone: exiting is the signal anyway.
      }
      exitNow(1);
    }
  }

  async worker() {
    for (;;) {
      try {
        await this.oneInvocation();
      } catch (e) {
        if (e instanceof ApiGone) exitNow(0);
        process.stderr.write(`[fnbox-runtime] internal error: ${(e && e.stack) || e}\n`);
        await sleep(RETRY_DELAY_MS);
      }
    }
  }

  async oneInvocation() {
    const res = await apiRequest('GET', `${API_PREFIX}/invocation/request`);
    if (res.status !== 200) {
      await sleep(RETRY_DELAY_MS);
      return;
    }
    const headers = res.headers; // lower-cased by Node
    const requestId = String(headers['x-cff-request-id'] || '').trim();
    if (!requestId) {
      await sleep(RETRY_DELAY_MS);
      return;
    }
    const invokeType = String(headers['x-cff-invoke-type'] || '').trim() || 'sync';
    const isInit = invokeType.toLowerCase() === 'initializer';
    const ctx = new Context(requestId, invokeType, headers, isInit ? this.initTimeoutS : this.timeoutS);

    let payload;
    let ctype;
    try {
      if (isInit) {
        if (this.initializer) {
          await callUser(this.initializer, [ctx], this.initializer.length >= 2, requestId);
        }
        payload = Buffer.alloc(0);
        ctype = 'application/octet-stream';
      } else {
        const result = await callUser(this.handler, [parseEvent(res.body), ctx], this.handler.length >= 3, requestId);
        try {
          [payload, ctype] = serialize(result);
        } catch (e) {
          await postError(requestId, {
            errorType: 'Runtime.ResultSerializationError',
            errorMessage: `Unable to serialise the handler result: ${e && e.message}`,
            stackTrace: [],
          });
          return;
        }
      }
    } catch (e) {
      await postError(requestId, describeError(e));
      return;
    }
    const r = await apiPost(`${API_PREFIX}/invocation/response/${requestId}`, payload, ctype);
    if (r.status === 413) {
      await postError(requestId, {
        errorType: 'Runtime.ResponseSizeTooLarge',
        errorMessage: `response body of ${payload.length} bytes is over the limit`,
        stackTrace: [],
      });
    } else if (r.status >= 300) {
      process.stderr.write(`[fnbox-runtime] posting the response of ${requestId}: HTTP ${r.status} ${r.body.slice(0, 200)}\n`);
    }
  }
}

// Errors that escape a handler asynchronously fail every in-flight invocation, then the
// process exits (the state of the user's code is unknown), as Node would do by default.
let fatalStarted = false;

async function fatal(kind, err) {
  const info = describeError(err);
  if (fatalStarted) {
    printError('', info);
    return;
  }
  fatalStarted = true;
  if (kind === 'Runtime.UnhandledPromiseRejection') {
    info.errorMessage = `${info.errorType}: ${info.errorMessage}`;
    info.errorType = kind;
  }
  const pending = Array.from(inFlight.entries());
  inFlight.clear();
  if (pending.length === 0) printError(`${kind === 'Runtime.UnhandledPromiseRejection' ? '' : 'uncaught exception: '}`, info);
  for (const [requestId] of pending) {
    try {
      await postError(requestId, info);
    } catch (ignored) {
      // API gone
    }
  }
  exitNow(1);
}

async function main() {
  process.on('SIGTERM', () => exitNow(0));
  process.on('uncaughtException', (err) => { fatal('uncaught', err); });
  process.on('unhandledRejection', (reason) => { fatal('Runtime.UnhandledPromiseRejection', reason); });
  const runtime = new Runtime();
  await runtime.load();
  const concurrency = Math.max(1, envInt('RUNTIME_CONCURRENCY', 1));
  for (let i = 0; i < concurrency; i++) runtime.worker();
}

main();
