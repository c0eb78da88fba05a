"""The browser control panel, its JSON API and the MJPEG stream, on one aiohttp server.

Routes (all under one address, printed by ``opensteady track --serve``):

================================ =================================================
``GET /``                        the control panel (host/panel.html, no build step)
``GET /stream.mjpg?view=clean``  MJPEG stream; ``view=hud`` adds the HUD
``GET /snapshot.jpg?view=...``   the newest frame as one JPEG
``GET /api/status``              mode, attitude, target, fps, latency, link, outputs
``POST /api/<action>``           a command with a JSON body (host.control.ACTIONS)
``GET /api/ws``                  WebSocket: status pushed ~5 times a second;
                                 send ``{"action": ..., ...fields}`` to command
================================ =================================================

A bad request gets a 4xx with ``{"error": ..., "field": ...}``. The server binds
to 127.0.0.1 unless told otherwise; bound anywhere else it refuses to start
without a token, and then every request must carry it (``Authorization: Bearer
TOKEN`` or ``?token=TOKEN``).

The server runs its own event loop on a thread; :meth:`WebServer.start`
returns once it listens (``port=0`` picks a free port, see ``url``).
"""

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from opensteady.host.control import ControlError
from opensteady.host.outputs import VIEWS, MjpegStream

log = logging.getLogger(__name__)

PANEL_PATH = os.path.join(os.path.dirname(__file__), "panel.html")
STATUS_PERIOD_S = 0.2


def is_loopback(host):
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebServer:
    """Panel + API + MJPEG. ``controls``: host.control.Controls; ``hub``: host.outputs.FrameHub."""

    def __init__(self, controls, hub, host="127.0.0.1", port=8080, token=None, stream_view="clean",
                 extra_status=None):
        if not is_loopback(host) and not token:
            raise ValueError("serving on %s (off this computer) needs a token: pass --serve-token SECRET "
                             "(clients then send 'Authorization: Bearer SECRET' or ?token=SECRET)" % host)
        self.controls = controls
        self.hub = hub
        self.host, self.port = host, port
        self.token = token
        self.streams = {view: MjpegStream(hub, view) for view in VIEWS}
        self.default_view = stream_view
        self.extra_status = extra_status  # callable returning a dict merged into /api/status
        self._loop = None
        self._runner = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="web-wait")
        self._stopping = False

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d/" % (host, self.port)

    # --- lifecycle ---------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="web", daemon=True)
        self._thread.start()
        self._ready.wait(30.0)
        if self._error is not None:
            raise self._error
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except OSError as exc:
            self._error = OSError("cannot serve on %s:%d: %s (is the port in use? try --serve-port)"
                                  % (self.host, self.port, exc.strerror or exc))
            self._ready.set()
            return
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _serve(self):
        from aiohttp import web

        app = web.Application(middlewares=[self._auth_middleware()])
        app.router.add_get("/", self._panel)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_get("/snapshot.jpg", self._snapshot)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_get("/api/ws", self._ws)
        app.router.add_post("/api/{action}", self._api_action)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._ready.set()

    def close(self):
        self._stopping = True
        self.hub.close()  # wakes every stream handler
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._pool.shutdown(wait=False)

    # --- helpers -------------------------------------------------------------------
    def _auth_middleware(self):
        from aiohttp import web

        @web.middleware
        async def check(request, handler):
            if self.token:
                given = request.query.get("token", "")
                auth = request.headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    given = auth[len("Bearer "):]
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return _error(web, 401, "token", "missing or wrong token (send 'Authorization: Bearer TOKEN' "
                                                     "or ?token=TOKEN)")
            return await handler(request)

        return check

    def _view(self, request):
        from aiohttp import web

        view = request.query.get("view", self.default_view)
        if view not in VIEWS:
            raise web.HTTPBadRequest(text=json.dumps({"error": "view: choose one of %s" % ", ".join(VIEWS),
                                                      "field": "view"}), content_type="application/json")
        return view

    def status(self):
        status = self.controls.status()
        status["outputs"] = {"mjpeg_" + v: dict(s.stats.as_dict(), clients=s.clients) for v, s in self.streams.items()}
        if self.extra_status is not None:
            status.update(self.extra_status())
        return status

    async def _wait_frame(self, seq, timeout_s=0.5):
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hub.wait_newer, seq, timeout_s)

    # --- handlers ------------------------------------------------------------------
    async def _panel(self, request):
        from aiohttp import web

        with open(PANEL_PATH, encoding="utf-8") as f:
            return web.Response(text=f.read(), content_type="text/html")

    async def _stream(self, request):
        """One client's pump: wait for a newer frame, write it, repeat (a slow client skips frames)."""
        from aiohttp import web

        stream = self.streams[self._view(request)]
        resp = web.StreamResponse(headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=%s" % stream.BOUNDARY,
            "Cache-Control": "no-cache, no-store", "Pragma": "no-cache"})
        await resp.prepare(request)
        stream.client_joined(+1)
        seq = 0
        try:
            while not self._stopping:
                frame = await self._wait_frame(seq)
                if frame is None:
                    if self.hub.closed:
                        break
                    continue
                await resp.write(stream.part(frame))
                stream.stats.record(frame, seq)
                seq = frame.seq
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stream.client_joined(-1)
        return resp

    async def _snapshot(self, request):
        from aiohttp import web

        view = self._view(request)
        frame = self.hub.latest()
        if frame is None:
            return _error(web, 503, "frame", "no frame yet")
        return web.Response(body=frame.jpeg(view), content_type="image/jpeg",
                            headers={"X-Frame-Index": str(frame.index), "Cache-Control": "no-cache"})

    async def _api_status(self, request):
        from aiohttp import web

        return web.json_response(self.status())

    async def _command(self, action, params, wait):
        seq = self.controls.submit(action, params)
        applied = True
        if wait:
            applied = await asyncio.get_running_loop().run_in_executor(self._pool, self.controls.wait_applied, seq, 5.0)
        return {"ok": True, "action": action, "applied": applied}

    async def _api_action(self, request):
        from aiohttp import web

        action = request.match_info["action"]
        if request.can_read_body:
            try:
                params = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return _error(web, 400, "body", "not valid JSON (%s)" % exc)
        else:
            params = {}
        try:
            reply = await self._command(action, params, request.query.get("wait") == "1")
        except ControlError as exc:
            return _error(web, 404 if exc.field == "action" else 422, exc.field, str(exc))
        return web.json_response(reply)

    async def _ws(self, request):
        from aiohttp import WSMsgType, web

        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)

        async def push():
            while not ws.closed:
                await ws.send_json({"type": "status", **self.status()})
                await asyncio.sleep(STATUS_PERIOD_S)

        pusher = asyncio.ensure_future(push())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(msg.data)
                    if not isinstance(body, dict):
                        raise ControlError("body", "expected a JSON object")
                    params = dict(body)
                    reply = await self._command(params.pop("action", None), params, bool(params.pop("wait", False)))
                except json.JSONDecodeError as exc:
                    reply = {"error": "body: not valid JSON (%s)" % exc, "field": "body"}
                except ControlError as exc:
                    reply = {"error": str(exc), "field": exc.field}
                await ws.send_json({"type": "reply", **reply})
        finally:
            pusher.cancel()
        return ws


def _error(web, code, field, message):
    if not message.startswith(field + ":"):
        message = "%s: %s" % (field, message)
    return web.json_response({"error": message, "field": field}, status=code)
