#!/usr/bin/python3
"""A scripted SPICE client on spice-gtk's GObject library (gi.repository.SpiceClientGLib).

Run with Debian's /usr/bin/python3 (it has `gi`).  The scenario comes as one JSON argument:

    {"host": "127.0.0.1", "port": 5900, "password": null,
     "tls_port": null, "ca_file": null,   # TLS: the secure port and the CA to trust
     "timeout_ms": 30000,              # give up (exit 3) after this long
     "settle_ms": 1000,                # the display is "quiet" after this long without updates
     "primary_out": "/tmp/p.ppm",      # write the primary surface once quiet (optional)
     "playback_out": "/tmp/pcm.raw",   # append every playback-data packet (optional)
     "playback_ms": 2000,              # keep receiving playback this long after it starts
     "wait_agent": false,              # wait for the agent to be connected
     "port_echo": 3000,                # on a port channel: send BREAK, write this many
                                       # 27-byte lines, wait until they come back
     "run_ms": 0,                      # stay connected at least this long
     "clipboard": {"send": "text", "selection": 1,   # clipboard round trip through the agent:
                   "fetch_agent": true},             # grab `selection` with `send` once the agent
                                       # can (answer its request); fetch the agent's grabs
     "file_copy": "/tmp/f.bin",        # send this file to the agent (file transfer)
     "resize": [[800, 600], [1024, 768]],  # once the agent can take monitors configs and a
                                       # primary exists: ask for each size in turn
                                       # (update_display + send_monitor_config) and wait
                                       # for a primary of that size before the next
     "inputs": [["key", 0x1e], ["key_down", 0x1d], ["key_up", 0x1d],
                ["motion", dx, dy, buttons], ["position", x, y, display, buttons],
                ["press", button, buttons], ["release", button, buttons],
                ["sleep_ms", 100]],
     "inputs_after_primary": true}     # send the inputs once the primary surface exists

Everything that happens is printed to stdout as one JSON object a line ({"event": ...}); the
last line is {"event": "done", "ok": true|false, ...}.  Exit 0 when the scenario finished,
2 on a channel error or a failed link, 3 on timeout.
"""

import ctypes
import json
import sys
import time

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import Gio, GLib, GObject  # noqa: E402
from gi.repository import SpiceClientGLib as Spice  # noqa: E402

SC = json.loads(sys.argv[1])
loop = GLib.MainLoop()
state = {
    "primary": None,  # (format, width, height, stride, address)
    "marked": False,
    "last_update": None,
    "inputs": None,
    "inputs_sent": False,
    "agent": False,
    "playback_started": None,
    "playback_bytes": 0,
    "primary_written": False,
    "ok": None,
    "why": "",
    "channels": [],
    "port_received": bytearray(),
    "port_done": False,
    "main": None,
    "clip_grabbed": False,  # our grab sent
    "clip_sent": False,  # our text handed to the agent
    "clip_received": None,  # text fetched from the agent's grab
    "file_started": False,
    "file_done": None,  # True/False once the transfer ended
    "display": None,  # the display channel
    "resize_next": 0,  # index of the next size to ask for
    "resize_waiting": None,  # (width, height) asked for, not seen yet
}
keep = []  # channel objects must stay referenced


def emit(**kw):
    print(json.dumps(kw), flush=True)


def finish(ok, why=""):
    if state["ok"] is None:
        state["ok"] = ok
        state["why"] = why
        loop.quit()


def write_primary():
    fmt, w, h, stride, addr = state["primary"]
    raw = ctypes.string_at(addr, stride * h)
    out = bytearray()
    for y in range(h):
        row = raw[y * stride: y * stride + w * 4]
        for x in range(w):
            b, g, r = row[4 * x], row[4 * x + 1], row[4 * x + 2]
            out += bytes((r, g, b))
    with open(SC["primary_out"], "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(out)
    state["primary_written"] = True
    emit(event="primary_written", width=w, height=h, format=fmt)


def send_inputs():
    inp = state["inputs"]
    if inp is None or state["inputs_sent"]:
        return
    state["inputs_sent"] = True
    for step in SC.get("inputs", []):
        kind = step[0]
        if kind == "key":
            inp.key_press_and_release(step[1])
        elif kind == "key_down":
            inp.key_press(step[1])
        elif kind == "key_up":
            inp.key_release(step[1])
        elif kind == "motion":
            inp.motion(step[1], step[2], step[3])
        elif kind == "position":
            inp.position(step[1], step[2], step[3], step[4])
        elif kind == "press":
            inp.button_press(step[1], step[2])
        elif kind == "release":
            inp.button_release(step[1], step[2])
        elif kind == "sleep_ms":
            # let the queued messages go out before the next ones
            end = time.monotonic() + step[1] / 1000.0
            while time.monotonic() < end:
                GLib.MainContext.default().iteration(False)
                time.sleep(0.005)
            continue
        else:
            emit(event="error", what="unknown input step %r" % (kind,))
            continue
        emit(event="input_sent", step=step)
    emit(event="inputs_done")


def port_payload():
    # Built once and kept: write_async does not hold a reference to the buffer.
    if "port_payload" not in state:
        state["port_payload"] = b"".join(
            b"line %06d from spice-gtk\n" % i for i in range(SC["port_echo"])
        )
    return state["port_payload"]


def on_port_written(channel, res, _data):
    try:
        channel.write_finish(res)
    except GLib.Error as e:
        emit(event="error", what="port write: %s" % e)


def start_port(channel):
    emit(
        event="port",
        name=channel.get_property("port-name"),
        opened=bool(channel.get_property("port-opened")),
    )
    # spice-gtk sends OPENED/CLOSED itself (connection state); only BREAK and above here.
    channel.event(2)  # SPICE_PORT_EVENT_BREAK
    channel.write_async(port_payload(), None, on_port_written, None)
    emit(event="port_sent", bytes=len(port_payload()))
    return False


def on_port_data(channel, data, size):
    got = state["port_received"]
    got.extend(ctypes.string_at(data, size))
    want = port_payload()
    if not state["port_done"] and len(got) >= len(want):
        state["port_done"] = True
        emit(event="port_echo", bytes=len(got), equal=bytes(got[: len(want)]) == want)


def on_channel_event(channel, ev):
    name = GObject.type_name(channel.__gtype__)
    emit(event="channel_event", channel=name, what=int(ev))
    if ev == Spice.ChannelEvent.OPENED:
        if isinstance(channel, Spice.PortChannel) and SC.get("port_echo"):
            # PORT_INIT follows the link; give it a moment.
            GLib.timeout_add(200, start_port, channel)
        if isinstance(channel, Spice.InputsChannel):
            state["inputs"] = channel
            if not SC.get("inputs_after_primary", True) or state["primary"] is not None:
                GLib.idle_add(lambda: send_inputs() and False)
    elif ev in (
        Spice.ChannelEvent.ERROR_CONNECT,
        Spice.ChannelEvent.ERROR_TLS,
        Spice.ChannelEvent.ERROR_LINK,
        Spice.ChannelEvent.ERROR_AUTH,
        Spice.ChannelEvent.ERROR_IO,
    ):
        if isinstance(channel, Spice.MainChannel):
            finish(False, "main channel error %d" % int(ev))
        else:
            emit(event="error", channel=name, what=int(ev))


def on_primary_create(channel, fmt, width, height, stride, shmid, imgdata):
    state["primary"] = (fmt, width, height, stride, imgdata)
    state["marked"] = False
    state["last_update"] = time.monotonic()
    emit(event="primary_create", format=fmt, width=width, height=height, stride=stride)
    if state["inputs"] is not None and SC.get("inputs_after_primary", True):
        GLib.idle_add(lambda: send_inputs() and False)


def on_primary_destroy(channel):
    emit(event="primary_destroy")


def get_primary(channel):
    """The display channel's primary: (width, height) from its "width"/"height" properties
    (the primary surface's size) when spice_display_channel_get_primary(channel, 0) says
    there is one, else None.  (The typelib's SpiceDisplayPrimary has a wrong layout: its
    `format` enum is taken as pointer-sized, so the struct fields read from Python are
    shifted; the properties are read from the same C struct.)"""
    try:
        ok = channel.display_channel_get_primary(0, Spice.DisplayPrimary())
    except Exception as e:  # noqa: BLE001
        emit(event="error", what="get_primary: %s" % e)
        return None
    if not ok:
        return None
    return (channel.get_property("width"), channel.get_property("height"))


def resize_tick():
    sizes = SC.get("resize") or []
    main = state["main"]
    if main is None or not state["agent"] or state["primary"] is None:
        return
    # VD_AGENT_CAP_MONITORS_CONFIG (1): the agent announced its caps
    if not main.agent_test_capability(1):
        return
    want = state["resize_waiting"]
    if want is not None:
        _fmt, w, h, _stride, _addr = state["primary"]
        if (w, h) == want and state["marked"]:
            emit(event="resize_done", width=w, height=h,
                 get_primary=get_primary(state["display"]))
            state["resize_waiting"] = None
        return
    i = state["resize_next"]
    if i >= len(sizes):
        return
    w, h = sizes[i]
    state["resize_next"] = i + 1
    state["resize_waiting"] = (w, h)
    main.update_display_enabled(0, True, False)
    main.update_display(0, 0, 0, w, h, False)
    ok = main.send_monitor_config()
    emit(event="resize_sent", width=w, height=h, ok=bool(ok))


def on_invalidate(channel, x, y, w, h):
    state["last_update"] = time.monotonic()


def on_mark(channel, mark):
    state["marked"] = mark != 0
    state["last_update"] = time.monotonic()
    emit(event="mark", mark=mark)


def on_playback_start(channel, fmt, channels, rate):
    state["playback_started"] = time.monotonic()
    emit(event="playback_start", format=fmt, channels=channels, rate=rate)


def on_playback_data(channel, data, size):
    raw = ctypes.string_at(data, size)
    state["playback_bytes"] += size
    if SC.get("playback_out"):
        with open(SC["playback_out"], "ab") as f:
            f.write(raw)


def on_playback_stop(channel):
    emit(event="playback_stop", bytes=state["playback_bytes"])


def on_agent(main, pspec):
    state["agent"] = bool(main.get_property("agent-connected"))
    emit(event="agent_connected", connected=state["agent"])


def clip_conf():
    return SC.get("clipboard") or {}


def read_u32s(ptr, n):
    """A guint32 array signal argument (a list, or an address), or None if unreadable."""
    if isinstance(ptr, (list, tuple)):
        return [int(x) for x in ptr]
    try:
        addr = int(ptr)
    except (TypeError, ValueError):
        try:
            addr = ctypes.pythonapi.PyCapsule_GetPointer
            addr.restype = ctypes.c_void_p
            addr.argtypes = [ctypes.py_object, ctypes.c_char_p]
            addr = addr(ptr, None)
        except Exception:  # noqa: BLE001
            return None
    if not addr or not n:
        return []
    return list((ctypes.c_uint32 * n).from_address(addr))


def on_clip_grab(main, selection, types, ntypes):
    ts = read_u32s(types, ntypes)
    emit(event="clipboard_grab", selection=selection, types=ts, ntypes=ntypes)
    # the types array may not be readable from Python: ask for UTF-8 text then
    if clip_conf().get("fetch_agent", True) and (ts is None or 1 in ts):
        main.clipboard_selection_request(selection, 1)
    return True


def on_clip_data(main, selection, type_, data, size):
    raw = ctypes.string_at(data, size) if size else b""
    text = raw.decode("utf-8", "replace")
    emit(event="clipboard_data", selection=selection, type=type_, text=text)
    if type_ == 1:
        state["clip_received"] = text


def on_clip_request(main, selection, type_, *rest):
    text = clip_conf().get("send")
    emit(event="clipboard_request", selection=selection, type=type_)
    if text is None or type_ != 1:
        return False
    main.clipboard_selection_notify(selection, type_, list(text.encode("utf-8")))
    state["clip_sent"] = True
    emit(event="clipboard_sent", selection=selection, len=len(text.encode("utf-8")))
    return True


def clip_tick():
    conf = clip_conf()
    main = state["main"]
    if not conf or main is None or not state["agent"]:
        return
    # VD_AGENT_CAP_CLIPBOARD_BY_DEMAND (5): the agent announced its caps
    if conf.get("send") is not None and not state["clip_grabbed"] and main.agent_test_capability(5):
        state["clip_grabbed"] = True
        main.clipboard_selection_grab(conf.get("selection", 1), [1])
        emit(event="clipboard_grab_sent", selection=conf.get("selection", 1))


def on_file_copied(main, result, *rest):
    try:
        ok = main.file_copy_finish(result)
        emit(event="file_copy_done", ok=bool(ok))
        state["file_done"] = bool(ok)
    except GLib.Error as e:  # noqa: F821
        emit(event="file_copy_done", ok=False, error=str(e))
        state["file_done"] = False


def file_tick():
    main = state["main"]
    path = SC.get("file_copy")
    if not path or main is None or not state["agent"] or state["file_started"]:
        return
    # the agent's caps must be known (VD_AGENT_CAP_REPLY, 2)
    if not main.agent_test_capability(2):
        return
    state["file_started"] = True
    emit(event="file_copy_start", path=path)
    main.file_copy_async([Gio.File.new_for_path(path)], Gio.FileCopyFlags.NONE, None,
                         None, None, on_file_copied, None)


def on_channel_new(session, channel):
    name = GObject.type_name(channel.__gtype__)
    state["channels"].append(name)
    emit(event="channel_new", channel=name, id=channel.get_property("channel-id"))
    keep.append(channel)
    GObject.Object.connect(channel, "channel-event", on_channel_event)
    if isinstance(channel, Spice.DisplayChannel):
        state["display"] = channel
        GObject.Object.connect(channel, "display-primary-create", on_primary_create)
        GObject.Object.connect(channel, "display-primary-destroy", on_primary_destroy)
        GObject.Object.connect(channel, "display-invalidate", on_invalidate)
        GObject.Object.connect(channel, "display-mark", on_mark)
    elif isinstance(channel, Spice.PlaybackChannel):
        GObject.Object.connect(channel, "playback-start", on_playback_start)
        GObject.Object.connect(channel, "playback-data", on_playback_data)
        GObject.Object.connect(channel, "playback-stop", on_playback_stop)
    elif isinstance(channel, Spice.PortChannel):
        GObject.Object.connect(channel, "port-data", on_port_data)
    elif isinstance(channel, Spice.MainChannel):
        GObject.Object.connect(channel, "notify::agent-connected", on_agent)
        state["main"] = channel
        if SC.get("clipboard"):
            GObject.Object.connect(channel, "main-clipboard-selection-grab", on_clip_grab)
            GObject.Object.connect(channel, "main-clipboard-selection", on_clip_data)
            GObject.Object.connect(channel, "main-clipboard-selection-request", on_clip_request)
    if not isinstance(channel, Spice.MainChannel):
        channel.connect()


STARTED = time.monotonic()


def tick():
    now = time.monotonic()
    done = now - STARTED >= SC.get("run_ms", 0) / 1000.0
    if SC.get("primary_out") and not state["primary_written"]:
        quiet = (
            state["primary"] is not None
            and state["last_update"] is not None
            and now - state["last_update"] >= SC.get("settle_ms", 1000) / 1000.0
        )
        if quiet:
            write_primary()
        else:
            done = False
    if SC.get("inputs") and not state["inputs_sent"]:
        done = False
    if SC.get("port_echo") and not state["port_done"]:
        done = False
    if SC.get("wait_agent") and not state["agent"]:
        done = False
    if SC.get("file_copy"):
        file_tick()
        if state["file_done"] is None:
            done = False
    if SC.get("clipboard"):
        clip_tick()
        conf = clip_conf()
        if conf.get("send") is not None and not state["clip_sent"]:
            done = False
        if conf.get("fetch_agent", True) and state["clip_received"] is None:
            done = False
    if SC.get("resize"):
        resize_tick()
        if state["resize_next"] < len(SC["resize"]) or state["resize_waiting"] is not None:
            done = False
    if SC.get("playback_ms"):
        started = state["playback_started"]
        if started is None or now - started < SC["playback_ms"] / 1000.0:
            done = False
    if done:
        finish(True)
        return False
    return True


def on_timeout():
    finish(False, "timeout")
    return False


session = Spice.Session()
session.set_property("host", SC.get("host", "127.0.0.1"))
if SC.get("port") is not None:
    session.set_property("port", str(SC["port"]))
if SC.get("tls_port") is not None:
    session.set_property("tls-port", str(SC["tls_port"]))
if SC.get("ca_file") is not None:
    session.set_property("ca-file", SC["ca_file"])
if SC.get("password") is not None:
    session.set_property("password", SC["password"])
GObject.Object.connect(session, "channel-new", on_channel_new)
GLib.timeout_add(50, tick)
GLib.timeout_add(SC.get("timeout_ms", 30000), on_timeout)
if not session.connect():
    emit(event="done", ok=False, why="session.connect() failed")
    sys.exit(2)
loop.run()
emit(
    event="done",
    ok=bool(state["ok"]),
    why=state["why"],
    channels=state["channels"],
    playback_bytes=state["playback_bytes"],
    agent=state["agent"],
    clipboard_received=state["clip_received"],
    clipboard_sent=state["clip_sent"],
    file_done=state["file_done"],
)
session.disconnect()
if state["ok"]:
    sys.exit(0)
sys.exit(3 if state["why"] == "timeout" else 2)
