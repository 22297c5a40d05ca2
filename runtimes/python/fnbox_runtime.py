#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""fnbox built-in Python event runtime (FunctionGraph dialect).

Self-contained, standard library only, Python 3.8+.  fnbox starts it as
``python3 fnbox_runtime.py`` with the working directory set to the function's
code root.  It imports the handler named by RUNTIME_HANDLER once, then loops
over the instance's runtime API (RUNTIME_API_ADDR):

    GET  /v1/runtime/invocation/request          next event (long poll)
    POST /v1/runtime/invocation/response/<id>    result
    POST /v1/runtime/invocation/error/<id>       {"errorType","errorMessage","stackTrace"}
    POST /v1/runtime/init/error                  import / handler resolution failure

An invocation whose ``X-CFF-Invoke-Type`` is ``initializer`` runs the
initializer (RUNTIME_INITIALIZER_HANDLER) instead of the handler.

Snapshot template mode (``snapshot: true``, FNBOX_TEMPLATE_SOCKET set): the
process imports the handler and runs the initializer once, reports over the
control socket, then forks one child per restored instance on request (see
``_template_main``); each child joins its instance's memory group and network
namespace and, when the instance is contained, its mount namespace, pids group,
uid/gid and limits (as fnbox does for the processes it starts), takes its
environment and output pipes, runs the restore hook
(RUNTIME_RESTORE_HOOK_HANDLER) and serves like a normal runtime.
"""

import asyncio
import datetime
import http.client
import importlib
import importlib.util
import inspect
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback

API_PREFIX = "/v1/runtime"
RETRY_DELAY_S = 0.05
API_GONE_AFTER_S = 5.0
RUNTIME_FILE = os.path.abspath(__file__)
IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep

_out_lock = threading.Lock()


# --------------------------------------------------------------------------- utilities

def _env(name, default=""):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name, default):
    try:
        return int(float(_env(name, str(default))))
    except (TypeError, ValueError):
        return default


def _now_ms():
    return int(time.time() * 1000)


def _utc_stamp():
    # Second precision, as FunctionGraph's logs show it: 2026-03-17T10:13:22Z.
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The context logger's levels (FunctionGraph's runtime: ERROR always; WARN unless ERROR; INFO at
# INFO or DEBUG; DEBUG only at DEBUG). The initial level is RUNTIME_LOG_LEVEL (any case), INFO
# when unset or unknown; Logger.setLevel changes it.
_LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR")


def _initial_log_level():
    level = _env("RUNTIME_LOG_LEVEL", "INFO").strip().upper()
    if level == "WARNING":
        level = "WARN"
    return level if level in _LOG_LEVELS else "INFO"


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _eprint(text):
    with _out_lock:
        try:
            sys.stderr.write(text if text.endswith("\n") else text + "\n")
            sys.stderr.flush()
        except Exception:
            pass


def _hard_exit(code):
    _flush()
    os._exit(code)


def _is_runtime_frame(filename):
    if not filename:
        return False
    if filename.startswith("<frozen importlib"):
        return True
    try:
        path = os.path.abspath(filename)
        return path == RUNTIME_FILE or path.startswith(IMPORTLIB_DIR)
    except Exception:
        return False


def _user_frames(tb):
    return [f for f in traceback.extract_tb(tb) if not _is_runtime_frame(f.filename)]


def _stack_lines(exc):
    """The user's traceback as a list of lines (runtime frames removed)."""
    lines = []
    for entry in traceback.format_list(_user_frames(exc.__traceback__)):
        lines.extend(entry.rstrip("\n").split("\n"))
    if isinstance(exc, SyntaxError):
        # File / line / caret of the offending source, without the final "SyntaxError: ..." line.
        only = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n").split("\n")
        lines.extend(only[:-1])
    return lines


def _format_traceback(exc):
    text = ["Traceback (most recent call last):\n"]
    text.extend(traceback.format_list(_user_frames(exc.__traceback__)))
    text.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(text)


# --------------------------------------------------------------------------- runtime API client

class ApiGone(Exception):
    pass


class ApiClient(object):
    """One keep-alive HTTP/1.1 connection to the runtime API (one per worker thread)."""

    def __init__(self, addr):
        host, _, port = addr.rpartition(":")
        if not host:
            host, port = addr, "80"
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.conn = None

    def _close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def _request_once(self, method, path, body, headers):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port)  # no timeout: long poll
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self._close()
        return resp, data

    def request(self, method, path, body=None, headers=None):
        """Send one request; retry connection errors every 50 ms, raise ApiGone after ~5 s."""
        failing_since = None
        while True:
            try:
                return self._request_once(method, path, body, headers)
            except (OSError, http.client.HTTPException):
                self._close()
                now = time.monotonic()
                if failing_since is None:
                    # A stale keep-alive connection fails once: retry at once.
                    failing_since = now
                    continue
                if now - failing_since > API_GONE_AFTER_S:
                    raise ApiGone()
                time.sleep(RETRY_DELAY_S)

    def post(self, path, body, content_type="application/json"):
        if isinstance(body, str):
            body = body.encode("utf-8")
        resp, data = self.request("POST", path, body, {"Content-Type": content_type})
        return resp.status, data


# --------------------------------------------------------------------------- context

class Logger(object):
    def __init__(self, request_id):
        self._request_id = request_id
        self._level = _initial_log_level()

    def setLevel(self, level):
        if level in _LOG_LEVELS:
            self._level = level

    def _log(self, level, msg, args):
        if _LOG_LEVELS.index(level) < _LOG_LEVELS.index(self._level):
            return
        text = msg if isinstance(msg, str) else str(msg)
        if len(args) == 1 and isinstance(args[0], dict) and args[0]:
            args = args[0]
        if args:
            try:
                text = text % args
            except Exception:
                text = " ".join([text] + [str(a) for a in args])
        text = text.replace("\r\n", "\r").replace("\n", "\r")
        line = "%s %s %s %s\n" % (_utc_stamp(), self._request_id, level, text)
        with _out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def info(self, msg, *args):
        self._log("INFO", msg, args)

    def warn(self, msg, *args):
        self._log("WARN", msg, args)

    warning = warn

    def error(self, msg, *args):
        self._log("ERROR", msg, args)

    def debug(self, msg, *args):
        self._log("DEBUG", msg, args)


def _load_user_data():
    try:
        data = json.loads(_env("RUNTIME_USERDATA", "{}"))
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


class Context(object):
    """FunctionGraph's event-function context (camelCase methods, as on the platform)."""

    def __init__(self, request_id, invoke_type, headers, timeout_s):
        self._request_id = request_id
        self._invoke_type = invoke_type
        self._start_ms = _now_ms()
        self._timeout_s = timeout_s
        deadline = headers.get("x-cff-deadline-ms", "")
        try:
            self._deadline_ms = int(float(deadline)) if deadline else None
        except ValueError:
            self._deadline_ms = None
        self._access_key = headers.get("x-cff-access-key", "")
        self._secret_key = headers.get("x-cff-secret-key", "")
        self._auth_token = headers.get("x-cff-auth-token", "")
        self._security_token = headers.get("x-cff-security-token", "")
        self._logger = Logger(request_id)

    def getRequestID(self):
        return self._request_id

    def getRemainingTimeInMilliSeconds(self):
        if self._deadline_ms is not None:
            remaining = self._deadline_ms - _now_ms()
        else:
            remaining = self._timeout_s * 1000 + self._start_ms - _now_ms()
        return max(0, int(remaining))

    def getRunningTimeInSeconds(self):
        return _env_int("RUNTIME_TIMEOUT", 3)

    def getMemorySize(self):
        return _env_int("RUNTIME_MEMORY", 128)

    def getCPUNumber(self):
        return _env_int("RUNTIME_CPU", 300)

    def getUserData(self, key, default=None):
        return USER_DATA.get(key, default)

    def getFunctionName(self):
        return _env("RUNTIME_FUNC_NAME")

    def getVersion(self):
        return _env("RUNTIME_FUNC_VERSION", "latest")

    def getPackage(self):
        return _env("RUNTIME_PACKAGE", "default")

    def getProjectID(self):
        return _env("RUNTIME_PROJECT_ID")

    def getAlias(self):
        return ""

    def getInvokeType(self):
        return self._invoke_type

    def getAccessKey(self):
        return self._access_key

    def getSecretKey(self):
        return self._secret_key

    def getSecurityAccessKey(self):
        return self._access_key

    def getSecuritySecretKey(self):
        return self._secret_key

    def getSecurityToken(self):
        return self._security_token

    def getToken(self):
        return self._auth_token

    def getLogger(self):
        return self._logger


USER_DATA = _load_user_data()


# --------------------------------------------------------------------------- loading user code

class InitError(Exception):
    def __init__(self, error_type, message, stack=None, cause=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []
        self.cause = cause


def _module_file(code_root, modname):
    base = os.path.join(code_root, *modname.split("."))
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _import_user_module(code_root, modname):
    existing = sys.modules.get(modname)
    path = _module_file(code_root, modname)
    if existing is not None and path is not None:
        loaded_from = getattr(existing, "__file__", None)
        if not loaded_from or os.path.abspath(loaded_from) != os.path.abspath(path):
            # The user's file shadows a module the runtime already imported (e.g. json.py):
            # load the user's file without replacing the runtime's module.
            spec = importlib.util.spec_from_file_location(modname, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return importlib.import_module(modname)


_module_cache = {}


def resolve_function(code_root, spec, what):
    """Resolve 'file.fn' / 'pkg.mod.fn' / 'dir/file.fn' to a callable or raise InitError."""
    spec = spec.strip()
    if "." not in spec:
        raise InitError("Runtime.MalformedHandlerName",
                        "Bad %s '%s': expected '<module>.<function>'" % (what, spec))
    modpath, fname = spec.rsplit(".", 1)
    modname = modpath.replace("\\", "/").strip("/").replace("/", ".")
    if modname.endswith(".py"):
        modname = modname[:-3]
    if not modname or not fname:
        raise InitError("Runtime.MalformedHandlerName",
                        "Bad %s '%s': expected '<module>.<function>'" % (what, spec))
    module = _module_cache.get(modname)
    if module is None:
        try:
            module = _import_user_module(code_root, modname)
        except SyntaxError as e:
            raise InitError("Runtime.UserCodeSyntaxError",
                            "Syntax error in module '%s': %s" % (modname, e),
                            _stack_lines(e), e)
        except ImportError as e:
            raise InitError("Runtime.ImportModuleError",
                            "Unable to import module '%s': %s" % (modname, e),
                            _stack_lines(e), e)
        except BaseException as e:
            if isinstance(e, SystemExit):
                raise
            raise InitError("Runtime.ImportModuleError",
                            "Unable to import module '%s': %s: %s" % (modname, type(e).__name__, e),
                            _stack_lines(e), e)
        _module_cache[modname] = module
    fn = getattr(module, fname, None)
    if fn is None:
        raise InitError("Runtime.HandlerNotFound",
                        "%s '%s' missing on module '%s'" % (what.capitalize(), fname, modname))
    if not callable(fn):
        raise InitError("Runtime.HandlerNotFound",
                        "%s '%s' on module '%s' is not callable (%s)"
                        % (what.capitalize(), fname, modname, type(fn).__name__))
    return fn


# --------------------------------------------------------------------------- async support

_loop = None
_loop_started = False
_loop_lock = threading.Lock()


def _install_main_loop():
    """Create the shared loop before user code is imported and make it the main thread's
    current loop, so module-level asyncio objects belong to the loop coroutine handlers run on."""
    global _loop
    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)


def _event_loop():
    """The shared asyncio loop, running in a daemon thread, used for every coroutine handler."""
    global _loop, _loop_started
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop, _loop_started = asyncio.new_event_loop(), False
        if not _loop_started:
            loop = _loop
            ready = threading.Event()

            def run():
                asyncio.set_event_loop(loop)
                ready.set()
                loop.run_forever()

            threading.Thread(target=run, name="fnbox-asyncio", daemon=True).start()
            ready.wait()
            _loop_started = True
        return _loop


async def _await(awaitable):
    return await awaitable


def _call_user(fn, *args):
    result = fn(*args)
    if inspect.isawaitable(result):
        future = asyncio.run_coroutine_threadsafe(_await(result), _event_loop())
        result = future.result()
    return result


# --------------------------------------------------------------------------- invocation loop

def _to_jsonable(obj):
    """json.dumps' fallback for objects it does not know, as FunctionGraph's published samples
    rely on: an object with a to_json() method (the event libraries' response classes, e.g.
    fg_apig_event.APIGResponse) is what that method returns (a JSON string is parsed), anything
    else with attributes is its __dict__. Everything else stays an error."""
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        value = to_json()
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8")
        return json.loads(value) if isinstance(value, str) else value
    if hasattr(obj, "__dict__"):
        return vars(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _serialize(result):
    """Return (body bytes, content type); raises on non-serialisable results."""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), "application/octet-stream"
    if isinstance(result, str):
        return result.encode("utf-8"), "text/plain; charset=utf-8"
    text = json.dumps(result, ensure_ascii=False, allow_nan=False, default=_to_jsonable)
    return text.encode("utf-8"), "application/json"


def _error_body(error_type, message, stack):
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": stack},
                      ensure_ascii=False)


def _parse_event(body):
    if not body or not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    _eprint(str(code))
    return 1


class Runtime(object):
    def __init__(self):
        self.code_root = os.path.abspath(_env("RUNTIME_CODE_ROOT", os.getcwd()))
        self.api_addr = _env("RUNTIME_API_ADDR", "127.0.0.1:8080")
        self.handler_spec = _env("RUNTIME_HANDLER", "index.handler")
        self.initializer_spec = _env("RUNTIME_INITIALIZER_HANDLER", "")
        self.timeout_s = _env_int("RUNTIME_TIMEOUT", 3)
        self.init_timeout_s = _env_int("RUNTIME_INITIALIZER_TIMEOUT", 3)
        self.handler = None
        self.initializer = None

    # ---- start-up

    def load(self):
        if self.code_root not in sys.path:
            sys.path.insert(0, self.code_root)
        try:
            self.handler = resolve_function(self.code_root, self.handler_spec, "handler")
            if self.initializer_spec:
                self.initializer = resolve_function(self.code_root, self.initializer_spec,
                                                    "initializer")
        except InitError as e:
            self.report_init_error(e)
        except SystemExit as e:
            _hard_exit(_exit_code(e))

    def report_init_error(self, err):
        if _template_ctl is not None:
            _eprint("[ERROR] %s: %s" % (err.error_type, err.message))
            _template_send({"event": "init_error",
                            "body": json.loads(_error_body(err.error_type, err.message, err.stack))})
            _hard_exit(1)
        if err.cause is not None:
            _eprint("[ERROR] %s: %s\n%s" % (err.error_type, err.message,
                                            _format_traceback(err.cause)))
        else:
            _eprint("[ERROR] %s: %s" % (err.error_type, err.message))
        try:
            ApiClient(self.api_addr).post(API_PREFIX + "/init/error",
                                          _error_body(err.error_type, err.message, err.stack))
        except ApiGone:
            pass
        except Exception:
            pass
        _hard_exit(1)

    # ---- loop

    def worker(self):
        # Synchronous handlers that call asyncio.get_event_loop() get a loop of their own.
        asyncio.set_event_loop(asyncio.new_event_loop())
        client = ApiClient(self.api_addr)
        while True:
            try:
                self.one_invocation(client)
            except ApiGone:
                _hard_exit(0)
            except Exception as e:  # a bug in the runtime itself: log and keep serving
                _eprint("[fnbox-runtime] internal error: %s\n%s"
                        % (e, "".join(traceback.format_exception(type(e), e, e.__traceback__))))
                time.sleep(RETRY_DELAY_S)

    def one_invocation(self, client):
        resp, body = client.request("GET", API_PREFIX + "/invocation/request")
        if resp.status != 200:
            time.sleep(RETRY_DELAY_S)
            return
        headers = {k.lower(): v for k, v in resp.getheaders()}
        request_id = headers.get("x-cff-request-id", "").strip()
        if not request_id:
            time.sleep(RETRY_DELAY_S)
            return
        invoke_type = headers.get("x-cff-invoke-type", "").strip() or "sync"
        is_init = invoke_type.lower() == "initializer"
        ctx = Context(request_id, invoke_type, headers,
                      self.init_timeout_s if is_init else self.timeout_s)
        try:
            try:
                if is_init:
                    if self.initializer is not None:
                        _call_user(self.initializer, ctx)
                    payload, ctype = b"", "application/octet-stream"
                else:
                    result = _call_user(self.handler, _parse_event(body), ctx)
                    try:
                        payload, ctype = _serialize(result)
                    except Exception as e:
                        self.post_error(client, request_id, "Runtime.ResultSerializationError",
                                        "Unable to serialise the handler result: %s: %s"
                                        % (type(e).__name__, e), [], None)
                        return
            except SystemExit as e:
                _hard_exit(_exit_code(e))
            except BaseException as e:
                self.post_error(client, request_id, type(e).__name__, str(e), _stack_lines(e), e)
                return
            status, data = client.post(API_PREFIX + "/invocation/response/" + request_id,
                                       payload, ctype)
            if status == 413:
                self.post_error(client, request_id, "Runtime.ResponseSizeTooLarge",
                                "response body of %d bytes is over the limit" % len(payload),
                                [], None)
            elif status >= 300:
                _eprint("[fnbox-runtime] posting the response of %s: HTTP %d %s"
                        % (request_id, status, data[:200].decode("utf-8", "replace")))
        finally:
            _flush()

    def post_error(self, client, request_id, error_type, message, stack, exc):
        if exc is not None:
            _eprint("[ERROR] %s %s: %s\n%s" % (request_id, error_type, message,
                                               _format_traceback(exc)))
        else:
            _eprint("[ERROR] %s %s: %s" % (request_id, error_type, message))
        status, data = client.post(API_PREFIX + "/invocation/error/" + request_id,
                                   _error_body(error_type, message, stack))
        if status >= 300:
            _eprint("[fnbox-runtime] posting the error of %s: HTTP %d %s"
                    % (request_id, status, data[:200].decode("utf-8", "replace")))


def _on_sigterm(signum, frame):
    _hard_exit(0)


# --------------------------------------------------------------------------- snapshot template

_template_ctl = None
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


def _template_send(msg):
    _template_ctl.sendall(json.dumps(msg).encode("utf-8") + b"\n")


def _libc():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    # prctl(2) takes unsigned longs after the option; some options insist the unused ones are 0.
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


def _step(what, fn, *args):
    """Run one setup step; its failure names it."""
    try:
        return fn(*args)
    except Exception as e:
        raise RuntimeError("%s failed: %s" % (what, getattr(e, "strerror", None) or e)) from None


def _check(what, rc, tolerate=()):
    """Raise OSError naming the step when a libc call returned non-zero."""
    if rc != 0:
        import ctypes
        err = ctypes.get_errno()
        if err not in tolerate:
            raise RuntimeError("%s failed: %s" % (what, os.strerror(err)))


def _template_main(runtime, sock_path):
    """Initialize once, then fork a restored instance per request of fnbox.

    Control protocol (one JSON object per line on a unix stream socket; fnbox sends one fork
    request at a time and waits for its answer):
      template -> fnbox  {"event":"ready"} | {"event":"init_error","body":{...}}
      fnbox -> template  {"op":"fork","env":{...},"cwd":..,"cgroup_procs":..|null,
                          "netns":bool,"request_id":..,"hook":bool,
                          "contain":null|{"mntns":bool,"pids_procs":..|null,"id":N|null,
                                          "nofile":bool,"last_cap":N}}
                         with SCM_RIGHTS fds [stdout_w, stderr_w(, netns)(, mntns)]
      template -> fnbox  {"event":"forked","pid":N} | {"event":"fork_error","message":..}
                         {"event":"exit","pid":N,"status":<raw wait status>} when a child ends
    The template answers once the child has joined its groups and namespaces and dropped its
    privileges (the child reports over a pipe), so a child that cannot be contained is a
    fork_error naming the step that failed.
    """
    global _template_ctl
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.connect(sock_path)
    _template_ctl = ctl
    runtime.load()
    hook_spec = _env("RUNTIME_RESTORE_HOOK_HANDLER", "")
    hook = None
    try:
        if hook_spec:
            hook = resolve_function(runtime.code_root, hook_spec, "restore hook")
    except InitError as e:
        runtime.report_init_error(e)
    if runtime.initializer is not None:
        request_id = _env("FNBOX_SNAPSHOT_REQUEST_ID", "snapshot-init")
        ctx = Context(request_id, "initializer", {}, runtime.init_timeout_s)
        try:
            _call_user(runtime.initializer, ctx)
        except SystemExit as e:
            _hard_exit(_exit_code(e))
        except BaseException as e:
            _eprint("[ERROR] %s %s: %s\n%s" % (request_id, type(e).__name__, e, _format_traceback(e)))
            _template_send({"event": "init_error",
                            "body": {"errorType": type(e).__name__, "errorMessage": str(e),
                                     "stackTrace": _stack_lines(e)}})
            _hard_exit(1)
    _flush()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    _template_send({"event": "ready"})
    buf = b""
    fds = []
    while True:
        try:
            ready, _, _ = select.select([ctl, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                os.read(wake_r, 512)
            except OSError:
                pass
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                _template_send({"event": "exit", "pid": pid, "status": status})
        if ctl in ready:
            data, fds_now, _, _ = socket.recv_fds(ctl, 1 << 20, 4)
            if not data:
                _hard_exit(0)  # fnbox closed the channel: the template is no longer needed
            buf += data
            fds.extend(fds_now)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line.decode("utf-8"))
                given, fds = fds, []
                _flush()
                # CPython reseeds `random` in a forked child (os.register_at_fork); a snapshot
                # restores memory as it was, PRNG state included: put it back in the child.
                rng = sys.modules.get("random")
                rng_state = rng.getstate() if rng is not None else None
                status_r, status_w = os.pipe()
                try:
                    pid = os.fork()
                except OSError as e:
                    for fd in given + [status_r, status_w]:
                        os.close(fd)
                    _template_send({"event": "fork_error", "message": str(e)})
                    continue
                if pid == 0:
                    os.close(status_r)
                    if rng_state is not None:
                        rng.setstate(rng_state)
                    try:
                        _restored_setup(msg, given, ctl, (wake_r, wake_w))
                    except BaseException as e:  # never return into the template's loop
                        try:
                            os.write(status_w, str(e).encode("utf-8", "replace") or b"error")
                        except BaseException:
                            pass
                        _hard_exit(70)
                    try:
                        os.write(status_w, b"ok")
                        os.close(status_w)
                        _restored_child(runtime, hook, msg)
                    except BaseException as e:  # never return into the template's loop
                        _eprint("[fnbox-runtime] restore failed: %s: %s" % (type(e).__name__, e))
                    _hard_exit(70)
                for fd in given:
                    os.close(fd)
                os.close(status_w)
                said = b""
                while True:
                    try:
                        chunk = os.read(status_r, 4096)
                    except InterruptedError:
                        continue
                    if not chunk:
                        break
                    said += chunk
                os.close(status_r)
                if said == b"ok":
                    _template_send({"event": "forked", "pid": pid})
                else:
                    # The child exits (70); its exit report names a pid fnbox never learnt.
                    _template_send({"event": "fork_error", "message":
                                    "the restored process could not be set up: %s"
                                    % (said.decode("utf-8", "replace")
                                       or "it exited before reporting")})


def _join(procs):
    with open(procs, "w") as f:
        f.write(str(os.getpid()))


def _restored_setup(msg, fds, ctl, wake):
    """In the forked child: join the instance's groups and namespaces and take its identity and
    limits, as fnbox does for a process it starts itself (contain.rs, Sandbox)."""
    global _template_ctl
    import resource
    template_pid = os.getppid()
    libc = _libc()

    def pdeathsig():
        # Nothing outlives fnbox: the template dies with fnbox, and this child with the template.
        _check("prctl(PR_SET_PDEATHSIG)", libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
        if os.getppid() != template_pid:
            raise RuntimeError("the snapshot template exited")

    pdeathsig()
    os.setpgid(0, 0)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in wake:
        os.close(fd)
    ctl.close()
    _template_ctl = None
    if msg.get("cgroup_procs"):
        _step("joining the memory group (%s)" % msg["cgroup_procs"], _join, msg["cgroup_procs"])
    out_fd, err_fd, rest = fds[0], fds[1], list(fds[2:])
    netns = rest.pop(0) if msg.get("netns") else None
    contain = msg.get("contain") or {}
    mntns = rest.pop(0) if contain.get("mntns") else None
    if netns is not None:
        _check("setns(CLONE_NEWNET)", libc.setns(netns, CLONE_NEWNET))
        os.close(netns)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    # Same steps, same order as Sandbox::enter_hook and Sandbox::restrict_hook.
    if mntns is not None:
        _check("setns(CLONE_NEWNS)", libc.setns(mntns, CLONE_NEWNS))
        os.close(mntns)
    if msg.get("cwd"):
        _step("chdir(%s)" % msg["cwd"], os.chdir, msg["cwd"])
    if contain.get("pids_procs"):
        _step("joining the pids group (%s)" % contain["pids_procs"], _join, contain["pids_procs"])
    if contain.get("nofile"):
        _step("setrlimit(RLIMIT_NOFILE)", resource.setrlimit, resource.RLIMIT_NOFILE, (1024, 1024))
        _check("prctl(PR_SET_NO_NEW_PRIVS)", libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    uid = contain.get("id")
    if uid is not None:
        for cap in range(int(contain.get("last_cap", 63)) + 1):
            _check("prctl(PR_CAPBSET_DROP, %d)" % cap, libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0),
                   tolerate=(22,))  # EINVAL: a capability this kernel does not know
        _check("prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
               libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), tolerate=(22,))
        _step("setgroups([])", os.setgroups, [])
        _step("setgid(%d)" % uid, os.setgid, uid)
        _step("setuid(%d)" % uid, os.setuid, uid)
        # A change of credentials clears the parent-death signal: set it again.
        pdeathsig()
    os.environ.clear()
    os.environ.update(msg["env"])


def _restored_child(runtime, hook, msg):
    """In the forked child, set up: become the new instance's runtime process, run the hook,
    serve."""
    global USER_DATA, _loop, _loop_started
    USER_DATA = _load_user_data()
    if _loop_started:
        # The loop's thread did not survive the fork: coroutine handlers get a fresh loop.
        _loop, _loop_started = None, False
    runtime.api_addr = _env("RUNTIME_API_ADDR", runtime.api_addr)
    runtime.timeout_s = _env_int("RUNTIME_TIMEOUT", 3)
    if hook is not None and msg.get("hook"):
        request_id = msg.get("request_id") or "restore"
        ctx = Context(request_id, "restore", {}, _env_int("RUNTIME_RESTORE_HOOK_TIMEOUT", 10))
        try:
            _call_user(hook, ctx)
        except SystemExit as e:
            _hard_exit(_exit_code(e))
        except BaseException as e:
            _eprint("[ERROR] %s %s: %s\n%s" % (request_id, type(e).__name__, e, _format_traceback(e)))
            try:
                ApiClient(runtime.api_addr).post(API_PREFIX + "/init/error",
                                                 _error_body(type(e).__name__, str(e), _stack_lines(e)))
            except Exception:
                pass
            _hard_exit(1)
    _serve(runtime)


def _serve(runtime):
    concurrency = max(1, _env_int("RUNTIME_CONCURRENCY", 1))
    for i in range(concurrency):
        threading.Thread(target=runtime.worker, name="fnbox-worker-%d" % i, daemon=True).start()
    # The main thread only waits, so SIGTERM is handled promptly even while handlers run.
    while True:
        time.sleep(3600)


def main():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    signal.signal(signal.SIGTERM, _on_sigterm)
    _install_main_loop()
    runtime = Runtime()
    template = _env("FNBOX_TEMPLATE_SOCKET", "")
    if template:
        _template_main(runtime, template)
    runtime.load()
    _serve(runtime)


if __name__ == "__main__":
    main()
